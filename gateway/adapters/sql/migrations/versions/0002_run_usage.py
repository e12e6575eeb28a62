"""Each run's resource use (peak memory, CPU seconds), on the run and on the cell's last run (issue 14).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 11:20:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = "resource use of the run from the container's cgroup: peak_memory_bytes, cpu_seconds, peak_scope"


def upgrade() -> None:
    with op.batch_alter_table("cells") as batch:
        batch.add_column(sa.Column("usage", sa.JSON(), nullable=True, comment=COMMENT))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("usage", sa.JSON(), nullable=True, comment=COMMENT))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("usage")
    with op.batch_alter_table("cells") as batch:
        batch.drop_column("usage")
