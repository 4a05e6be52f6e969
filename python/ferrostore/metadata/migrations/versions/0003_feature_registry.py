"""Feature registry: feature definitions and materialization intervals.

Revision ID: 0003_feature_registry
Revises: 0002_tracking_registry
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_feature_registry"
down_revision: str | None = "0002_tracking_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feature_registry_objects",
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project", "kind", "name", name=op.f("pk_feature_registry_objects")
        ),
    )
    op.create_table(
        "feature_materializations",
        sa.Column("id", _BigIntId, autoincrement=True, nullable=False),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("feature_view", sa.Text(), nullable=False),
        sa.Column("start_ts", sa.BigInteger(), nullable=False),
        sa.Column("end_ts", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_materializations")),
    )
    op.create_index(
        "ix_feature_materializations_project_view",
        "feature_materializations",
        ["project", "feature_view"],
    )


def downgrade() -> None:
    op.drop_index("ix_feature_materializations_project_view", "feature_materializations")
    op.drop_table("feature_materializations")
    op.drop_table("feature_registry_objects")
