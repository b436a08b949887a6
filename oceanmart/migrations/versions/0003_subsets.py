"""subsets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subsets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("copy", sa.String(length=8), nullable=False),
        sa.Column("cells", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_subsets_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["product_versions.id"],
            name=op.f("fk_subsets_version_id_product_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subsets")),
    )
    op.create_index(op.f("ix_subsets_product_id"), "subsets", ["product_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_subsets_product_id"), table_name="subsets")
    op.drop_table("subsets")
