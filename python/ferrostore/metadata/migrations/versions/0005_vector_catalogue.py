"""Vector catalogue: the collections of ferrostore.vectors (name, id, dimension, space, params).

Revision ID: 0005_vector_catalogue
Revises: 0004_lineage
Create Date: 2025-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_vector_catalogue"
down_revision: str | None = "0004_lineage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vector_collections",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=True),
        sa.Column("space", sa.Text(), nullable=False),
        sa.Column("hnsw_m", sa.Integer(), nullable=False),
        sa.Column("hnsw_construction_ef", sa.Integer(), nullable=False),
        sa.Column("hnsw_search_ef", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("record_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vector_collections")),
        sa.UniqueConstraint("name", name=op.f("uq_vector_collections_name")),
    )


def downgrade() -> None:
    op.drop_table("vector_collections")
