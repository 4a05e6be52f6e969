"""The tables of the shared metadata schema, as SQLAlchemy Core objects.

Every area of ferrostore (feature registry, model registry, tracking, lineage, vector catalogue)
declares its tables on :data:`metadata` here, and adds an Alembic migration under
``ferrostore/metadata/migrations/versions`` that creates them. The naming convention gives
every constraint a stable name, which SQLite batch migrations need to alter them later.

Example:
    >>> from ferrostore.metadata.tables import counters, metadata
    >>> counters.name in metadata.tables
    True
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["NAMING_CONVENTION", "counters", "ferrostore_info", "metadata"]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names used by every table of the schema (and by the migrations)."""

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""The one :class:`sqlalchemy.MetaData` holding every table of the shared schema."""

ferrostore_info = sa.Table(
    "ferrostore_info",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
"""Facts about the database itself: ``instance_id`` (a UUID) and ``created_at`` (ISO 8601)."""

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
"""Named monotonic counters, advanced by :meth:`ferrostore.metadata.MetadataDB.next_value`."""
