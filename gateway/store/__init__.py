"""Durable state: the kernel registry, cells and runs in SQLite (default) or PostgreSQL, via SQLAlchemy."""

from gateway.store.store import InterruptedRun, KernelRecord, Store

__all__ = ["InterruptedRun", "KernelRecord", "Store"]
