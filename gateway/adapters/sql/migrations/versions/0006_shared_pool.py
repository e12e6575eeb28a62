"""Several replicas on one PostgreSQL (issue 11): the shared warm pool and the pending starts admitted.

Revision ID: 0006_shared_pool
Revises: 0003
Create Date: 2026-11-29 14:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_shared_pool"
down_revision: str | Sequence[str] | None = "0005_replicas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pool_kernels",
        sa.Column(
            "kernel_id", sa.BigInteger(), autoincrement=False, nullable=False, comment="the id it gets once claimed"
        ),
        sa.Column("instance", sa.String(32), nullable=False, comment="the deployment whose pool it is in"),
        sa.Column("uuid", sa.String(36), nullable=False, comment="the id Jupyter's protocol uses"),
        sa.Column("runtime", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, comment="starting | ready | claimed"),
        sa.Column("filler", sa.String(64), nullable=False, comment="the leader process that started it"),
        sa.Column("container_id", sa.String(64), nullable=False, server_default="", comment="empty until ready"),
        sa.Column(
            "node", sa.String(128), nullable=True, comment="where it runs, when the backend says (agents backend)"
        ),
        sa.Column("sandbox", sa.JSON(), nullable=False, comment="its backend's handle state, without key"),
        sa.Column("hmac_key", sa.String(128), nullable=False, comment="secret; emptied when it is claimed"),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("ready_at", sa.Double(), nullable=True),
        sa.Column("claimed_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("kernel_id", name=op.f("pk_pool_kernels")),
    )
    op.create_index("ix_pool_kernels_claim", "pool_kernels", ["instance", "runtime", "state", "ready_at"])
    op.create_table(
        "admissions",
        sa.Column("ticket", sa.String(32), nullable=False, comment="random hex id of one admitted start"),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True, comment="id of the API key that asked"),
        sa.Column(
            "kernel_id",
            sa.BigInteger(),
            nullable=True,
            comment="its kernel, once known: stored, it no longer counts here",
        ),  # fmt: skip
        sa.Column("expires_at", sa.Double(), nullable=False, comment="past it, its replica is taken as dead mid-start"),
        sa.PrimaryKeyConstraint("ticket", name=op.f("pk_admissions")),
    )
    op.create_index("ix_admissions_instance", "admissions", ["instance"])


def downgrade() -> None:
    op.drop_index("ix_admissions_instance", table_name="admissions")
    op.drop_table("admissions")
    op.drop_index("ix_pool_kernels_claim", table_name="pool_kernels")
    op.drop_table("pool_kernels")
