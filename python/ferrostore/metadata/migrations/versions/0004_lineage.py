"""Lineage: ML Metadata's types, artifacts, executions, contexts, events and links.

Revision ID: 0004_lineage
Revises: 0003_feature_registry
Create Date: 2025-01-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_lineage"
down_revision: str | None = "0003_feature_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NODES = ("lineage_artifacts", "lineage_executions", "lineage_contexts")
_PROPS = {
    "lineage_artifact_properties": "lineage_artifacts",
    "lineage_execution_properties": "lineage_executions",
    "lineage_context_properties": "lineage_contexts",
}


def _fk(column: str, table: str, *, cascade: bool = True) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{table}.id"],
        name=op.f(f"fk_{_current}_{column}_{table}"),
        ondelete="CASCADE" if cascade else None,
    )


_current = ""


def upgrade() -> None:
    global _current
    op.create_table(
        "lineage_types",
        sa.Column("id", _BigIntId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("base_type", sa.Text(), nullable=True),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_types")),
        sa.UniqueConstraint("kind", "name", name=op.f("uq_lineage_types_kind_name")),
    )
    _current = "lineage_type_properties"
    op.create_table(
        _current,
        sa.Column("type_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("data_type", sa.Text(), nullable=False),
        _fk("type_id", "lineage_types"),
        sa.PrimaryKeyConstraint("type_id", "name", name=op.f(f"pk_{_current}")),
    )
    for table in _NODES:
        _current = table
        extra = [sa.Column("uri", sa.Text(), nullable=True)] if table == "lineage_artifacts" else []
        op.create_table(
            table,
            sa.Column("id", _BigIntId, autoincrement=True, nullable=False),
            sa.Column("type_id", sa.BigInteger(), nullable=False),
            sa.Column("name", sa.Text(), nullable=table != "lineage_contexts"),
            sa.Column("external_id", sa.Text(), nullable=True),
            sa.Column("state", sa.Text(), nullable=True),
            sa.Column("create_time", sa.BigInteger(), nullable=False),
            sa.Column("last_update_time", sa.BigInteger(), nullable=False),
            *extra,
            _fk("type_id", "lineage_types", cascade=False),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("external_id", name=op.f(f"uq_{table}_external_id")),
            sa.UniqueConstraint("type_id", "name", name=op.f(f"uq_{table}_type_id_name")),
        )
    op.create_index("ix_lineage_artifacts_uri", "lineage_artifacts", ["uri"])
    for table, owner in _PROPS.items():
        _current = table
        op.create_table(
            table,
            sa.Column("node_id", sa.BigInteger(), nullable=False),
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("is_custom", sa.Boolean(), nullable=False),
            sa.Column("data_type", sa.Text(), nullable=False),
            sa.Column("int_value", sa.BigInteger(), nullable=True),
            sa.Column("double_value", sa.Float(), nullable=True),
            sa.Column("string_value", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(
                ["node_id"],
                [f"{owner}.id"],
                name=op.f(f"fk_{table}_node_id_{owner}"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("node_id", "name", "is_custom", name=op.f(f"pk_{table}")),
        )
        op.create_index(f"ix_{table}_name_string_value", table, ["name", "string_value"])
    _current = "lineage_events"
    op.create_table(
        _current,
        sa.Column("id", _BigIntId, autoincrement=True, nullable=False),
        sa.Column("artifact_id", sa.BigInteger(), nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("src_node", sa.BigInteger(), nullable=False),
        sa.Column("dst_node", sa.BigInteger(), nullable=False),
        sa.Column("milliseconds_since_epoch", sa.BigInteger(), nullable=False),
        _fk("artifact_id", "lineage_artifacts"),
        _fk("execution_id", "lineage_executions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_events")),
        sa.UniqueConstraint(
            "artifact_id", "execution_id", "type", name=op.f("uq_lineage_events_artifact_id")
        ),
    )
    op.create_index("ix_lineage_events_execution_id", _current, ["execution_id"])
    op.create_index("ix_lineage_events_src_dst", _current, ["src_node", "dst_node"])
    op.create_index("ix_lineage_events_dst_src", _current, ["dst_node", "src_node"])
    for table, column, other in (
        ("lineage_attributions", "artifact_id", "lineage_artifacts"),
        ("lineage_associations", "execution_id", "lineage_executions"),
        ("lineage_parent_contexts", "parent_context_id", "lineage_contexts"),
    ):
        _current = table
        op.create_table(
            table,
            sa.Column("context_id", sa.BigInteger(), nullable=False),
            sa.Column(column, sa.BigInteger(), nullable=False),
            _fk("context_id", "lineage_contexts"),
            _fk(column, other),
            sa.PrimaryKeyConstraint("context_id", column, name=op.f(f"pk_{table}")),
        )
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table in (
        "lineage_parent_contexts",
        "lineage_associations",
        "lineage_attributions",
        "lineage_events",
        *_PROPS,
        *reversed(_NODES),
        "lineage_type_properties",
        "lineage_types",
    ):
        op.drop_table(table)
