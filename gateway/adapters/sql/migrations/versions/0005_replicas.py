"""Several gateway replicas on one database (issue 11): each kernel's owning replica and epoch, and the replicas.

Revision ID: 0005_replicas
Revises: 0003
Create Date: 2026-11-29 14:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_replicas"
down_revision: str | Sequence[str] | None = "0004_kernel_packages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kernels") as batch:
        batch.add_column(
            sa.Column("owner_replica", sa.String(64), nullable=True, comment="the replica serving it (null: none)")
        )
        batch.add_column(
            sa.Column(
                "owner_epoch",
                sa.BigInteger(),
                nullable=False,
                server_default="0",
                comment="bumped at every change of owner; an owner's writes carry it (fencing)",
            )
        )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(64), nullable=False, comment="JUPYCELL_REPLICA_ID"),
        sa.Column("instance", sa.String(32), nullable=False, comment="the deployment (JUPYCELL_INSTANCE)"),
        sa.Column("url", sa.String(512), nullable=False, comment="where other replicas reach it"),
        sa.Column("host", sa.String(255), nullable=False, comment="host name of its process"),
        sa.Column("pid", sa.Integer(), nullable=False, comment="its process id on that host"),
        sa.Column("heartbeat_at", sa.Double(), nullable=False, comment="database time of its last heartbeat"),
        sa.Column("expires_at", sa.Double(), nullable=False, comment="its lease (and its kernels') ends then"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replicas")),
    )
    op.create_index(op.f("ix_kernels_owner_replica"), "kernels", ["owner_replica"])


def downgrade() -> None:
    op.drop_index(op.f("ix_kernels_owner_replica"), table_name="kernels")
    op.drop_table("replicas")
    with op.batch_alter_table("kernels") as batch:
        batch.drop_column("owner_epoch")
        batch.drop_column("owner_replica")
