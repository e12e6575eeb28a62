"""Packages on demand: what each kernel installed; a custom image per kernel (issue 13).

Revision ID: 0004_kernel_packages
Revises: 0003
Create Date: 2026-11-29 14:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_kernel_packages"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kernels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "image",
                sa.String(length=256),
                nullable=True,
                comment="its own image (JUPYCELL_ALLOWED_IMAGES); null: the default",
            )
        )
    op.create_table(
        "kernel_packages",
        sa.Column("kernel_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "requirements", sa.JSON(), nullable=False, comment="requirement strings the kernel asked for, in order"
        ),
        sa.Column(
            "wheels",
            sa.JSON(),
            nullable=False,
            comment="wheels fetched for them: name, version, filename, sha256, size",
        ),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["kernel_id"], ["kernels.id"], name=op.f("fk_kernel_packages_kernel_id_kernels"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("kernel_id", name=op.f("pk_kernel_packages")),
    )


def downgrade() -> None:
    op.drop_table("kernel_packages")
    with op.batch_alter_table("kernels", schema=None) as batch_op:
        batch_op.drop_column("image")
