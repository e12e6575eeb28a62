"""The database schema: kernels, their cells, and cell runs. Changes to it are Alembic migrations.

Times are Unix seconds (floats, as ``time.time()`` gives them), the same on SQLite and PostgreSQL.
The kernel's HMAC key has a column of its own so that nothing that prints connection info can leak it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Deterministic constraint names, so that migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_USAGE = "resource use of the run from the container's cgroup: peak_memory_bytes, cpu_seconds, peak_scope"

kernels = Table(
    "kernels",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="the seed API's integer kernel id"),
    Column("uuid", String(36), nullable=False, unique=True, comment="the id Jupyter's protocol uses"),
    Column("instance", String(32), nullable=False, index=True, comment="the gateway instance that owns it"),
    Column("owner", String(128), nullable=True, comment="id of the API key that started it"),
    Column("runtime", String(32), nullable=False, comment="container runtime: runc, runsc"),
    # Issue 13 (migration 0004_kernel_packages): a custom image of its own.
    Column("image", String(256), nullable=True, comment="its own image (JUPYCELL_ALLOWED_IMAGES); null: the default"),
    Column("env", JSON, nullable=False, comment="environment variables set in its container (Jupyter API)"),
    Column("container_name", String(128), nullable=False),
    Column("container_id", String(64), nullable=False, comment="empty while no container exists"),
    Column("connection", JSON, nullable=False, comment="connection info without the key"),
    Column("hmac_key", String(128), nullable=False, comment="secret: never logged, never returned by the API"),
    Column("limits", JSON, nullable=False, comment="the sandbox spec the container was created with"),
    Column("state", String(16), nullable=False, comment="idle | busy | starting | dead"),
    Column("last_death", Text, nullable=True, comment="why it last died"),
    Column("created_at", Double, nullable=False),
    Column("last_activity_at", Double, nullable=False),
    # Issue 12 (migration 0002): the notebook's version, changed by every add, edit and delete of a cell.
    Column(
        "notebook_version",
        BigInteger,
        nullable=False,
        default=0,
        server_default="0",
        comment="changed by every add, edit and delete of a cell",
    ),
    # Issue 11 (migration 0005_replicas): the replica serving the kernel, and the epoch its writes carry.
    Column("owner_replica", String(64), nullable=True, index=True, comment="the replica serving it (null: none)"),
    Column(
        "owner_epoch",
        BigInteger,
        nullable=False,
        default=0,
        server_default="0",
        comment="bumped at every change of owner; an owner's writes carry it (fencing)",
    ),
)

#: Issue 11: the gateway replicas of a deployment sharing this database, each with its lease.
replicas = Table(
    "replicas",
    metadata,
    Column("id", String(64), primary_key=True, comment="JUPYCELL_REPLICA_ID"),
    Column("instance", String(32), nullable=False, comment="the deployment (JUPYCELL_INSTANCE)"),
    Column("url", String(512), nullable=False, comment="where other replicas reach it"),
    Column("host", String(255), nullable=False, comment="host name of its process"),
    Column("pid", Integer, nullable=False, comment="its process id on that host"),
    Column("heartbeat_at", Double, nullable=False, comment="database time of its last heartbeat"),
    Column("expires_at", Double, nullable=False, comment="its lease (and its kernels') ends then"),
)

cells = Table(
    "cells",
    metadata,
    Column("kernel_id", BigInteger, ForeignKey("kernels.id", ondelete="CASCADE"), primary_key=True),
    Column("number", BigInteger, primary_key=True),
    Column("code", Text, nullable=False),
    Column("outputs", JSON, nullable=False, comment="nbformat v4 outputs of the last run"),
    Column("execution_count", Integer, nullable=True),
    Column("status", String(16), nullable=True, comment="null (not run), ok, error, timeout, died, interrupted"),
    Column("started_at", Double, nullable=True, comment="the last run's start"),
    Column("ended_at", Double, nullable=True, comment="the last run's end"),
    Column("stale", Boolean, nullable=False, default=False, comment="ran, but code it depends on changed since"),
    Column("usage", JSON, nullable=True, comment=_USAGE),  # issue 14 (migration 0002)
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True, comment="random hex id chosen by the gateway"),
    Column("kernel_id", BigInteger, ForeignKey("kernels.id", ondelete="CASCADE"), nullable=False),
    Column("cell_number", BigInteger, nullable=False),
    Column("code", Text, nullable=False, comment="the code as it was run"),
    Column("state", String(16), nullable=False, comment="running | finished | interrupted"),
    Column("status", String(16), nullable=True, comment="how it ended: ok, error, timeout, died, interrupted"),
    Column(
        "outputs",
        JSON,
        nullable=True,
        comment="outputs so far while running (written in batches), kept when interrupted; "
        "null once finished (the cell holds them)",
    ),
    Column("execution_count", Integer, nullable=True),
    Column("truncated", Boolean, nullable=False, default=False),
    Column("usage", JSON, nullable=True, comment=_USAGE),  # issue 14 (migration 0002)
    Column("detail", Text, nullable=True),
    Column("started_at", Double, nullable=False),
    Column("finished_at", Double, nullable=True),
    Index("ix_runs_kernel_id", "kernel_id"),
    Index("ix_runs_state", "state"),
)

# Issue 13 (migration 0004_kernel_packages): what each kernel installed on demand, installed again after a restart.
kernel_packages = Table(
    "kernel_packages",
    metadata,
    Column("kernel_id", BigInteger, ForeignKey("kernels.id", ondelete="CASCADE"), primary_key=True),
    Column("requirements", JSON, nullable=False, comment="requirement strings the kernel asked for, in order"),
    Column("wheels", JSON, nullable=False, comment="wheels fetched for them: name, version, filename, sha256, size"),
    Column("updated_at", Double, nullable=False),
)

# --- issue 11 (migration 0006_shared_pool): what the replicas of one deployment share on PostgreSQL ------------------

pool_kernels = Table(
    "pool_kernels",
    metadata,
    Column("kernel_id", BigInteger, primary_key=True, autoincrement=False, comment="the id it gets once claimed"),
    Column("instance", String(32), nullable=False, comment="the deployment whose pool it is in"),
    Column("uuid", String(36), nullable=False, comment="the id Jupyter's protocol uses"),
    Column("runtime", String(32), nullable=False),
    Column("state", String(16), nullable=False, comment="starting | ready | claimed"),
    Column("filler", String(64), nullable=False, comment="the leader process that started it"),
    Column("container_id", String(64), nullable=False, server_default="", comment="empty until ready"),
    Column("node", String(128), nullable=True, comment="where it runs, when the backend says (agents backend)"),
    Column("sandbox", JSON, nullable=False, comment="its backend's handle state, without key"),
    Column("hmac_key", String(128), nullable=False, comment="secret; emptied when it is claimed"),
    Column("created_at", Double, nullable=False),
    Column("ready_at", Double, nullable=True),
    Column("claimed_at", Double, nullable=True),
    Index("ix_pool_kernels_claim", "instance", "runtime", "state", "ready_at"),
)

admissions = Table(
    "admissions",
    metadata,
    Column("ticket", String(32), primary_key=True, comment="random hex id of one admitted start"),
    Column("instance", String(32), nullable=False),
    Column("owner", String(128), nullable=True, comment="id of the API key that asked"),
    Column("kernel_id", BigInteger, nullable=True, comment="its kernel, once known: stored, it no longer counts here"),
    Column("expires_at", Double, nullable=False, comment="past it, its replica is taken as dead mid-start"),
    Index("ix_admissions_instance", "instance"),
)
