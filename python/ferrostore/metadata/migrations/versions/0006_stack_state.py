"""Stack state: the resources a declared stack (ferrostore.yaml) last applied and owns.

Revision ID: 0006_stack_state
Revises: 0005_vector_catalogue
Create Date: 2025-01-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_stack_state"
down_revision: str | None = "0005_vector_catalogue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stack_resources",
        sa.Column("stack", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("protect", sa.Boolean(), nullable=False),
        sa.Column("applied_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stack", "resource", name=op.f("pk_stack_resources")),
    )


def downgrade() -> None:
    op.drop_table("stack_resources")
