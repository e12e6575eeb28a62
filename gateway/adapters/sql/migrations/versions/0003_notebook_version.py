"""The notebook version of each kernel (issue 12: optimistic concurrency between writers).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 11:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kernels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "notebook_version",
                sa.BigInteger(),
                nullable=False,
                server_default="0",
                comment="changed by every add, edit and delete of a cell",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("kernels", schema=None) as batch_op:
        batch_op.drop_column("notebook_version")
