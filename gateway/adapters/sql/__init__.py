"""Durable state: the kernel registry, cells and runs in SQLite (default) or PostgreSQL, via SQLAlchemy."""

from gateway.adapters.sql.store import Store

__all__ = ["Store"]
