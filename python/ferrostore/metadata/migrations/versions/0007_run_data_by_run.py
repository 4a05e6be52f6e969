"""Run data stored by (run_id, key); its (key, value) indexes cover the run id.

On SQLite ``run_params``, ``run_tags`` and ``run_latest_metrics`` are rebuilt ``WITHOUT ROWID``,
so their rows live in the primary key's own B-tree: reading a run's data is one search instead
of an index search and then a row search, and a secondary index already holds the run id. The
rows are copied over unchanged. PostgreSQL keeps its tables (already keyed by (run_id, key)).

On both, the (key, value) indexes that filters search by get the run id (and ``is_nan`` for
metrics) as trailing columns, so a filter finds its runs from the index alone.

Revision ID: 0007_run_data_by_run
Revises: 0006_stack_state
Create Date: 2025-01-07
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_run_data_by_run"
down_revision: str | None = "0006_stack_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Double = sa.Float(precision=53)


def _text_value() -> list[sa.Column[object]]:
    return [sa.Column("value", sa.Text(), nullable=False)]


def _metric_value() -> list[sa.Column[object]]:
    return [
        sa.Column("value", _Double, nullable=True),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
    ]


# table -> (its columns after run_id and key, old index columns, new index columns)
_TABLES: dict[str, tuple[Callable[[], list[sa.Column[object]]], list[str], list[str]]] = {
    "run_params": (_text_value, ["key", "value"], ["key", "value", "run_id"]),
    "run_tags": (_text_value, ["key", "value"], ["key", "value", "run_id"]),
    "run_latest_metrics": (_metric_value, ["key", "value"], ["key", "value", "is_nan", "run_id"]),
}


def _rebuild_sqlite(name: str, *, with_rowid: bool) -> None:
    """Copy a SQLite table into a new one keyed by (run_id, key), with or without rowid."""
    values = _TABLES[name][0]()
    columns = ["run_id", "key", *(c.name for c in values)]
    quoted = ", ".join(f'"{c}"' for c in columns)
    new = f"{name}_0007"
    op.create_table(
        new,
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        *values,
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=f"fk_{name}_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=f"pk_{name}"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(f"INSERT INTO {new} ({quoted}) SELECT {quoted} FROM {name}")
    op.execute(f"DROP TABLE {name}")
    op.execute(f"ALTER TABLE {new} RENAME TO {name}")


def _migrate(*, forward: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, (_, old_index, new_index) in _TABLES.items():
        index = f"ix_{name}_key_value"
        if sqlite:
            # The index goes with the old table; the new one is indexed once it is filled.
            _rebuild_sqlite(name, with_rowid=not forward)
        else:
            op.drop_index(index, table_name=name)
        op.create_index(index, name, new_index if forward else old_index)


def upgrade() -> None:
    _migrate(forward=True)


def downgrade() -> None:
    _migrate(forward=False)
