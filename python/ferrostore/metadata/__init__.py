"""The shared metadata database of ferrostore: SQLite by default, PostgreSQL for a team.

The feature registry, tracking, the model registry, lineage and the vector catalogue keep
their metadata in one SQL database, reached through :class:`MetadataDB` (SQLAlchemy Core)
and kept at the newest schema by the Alembic migrations shipped in
``ferrostore/metadata/migrations``.

Example:
    >>> from ferrostore.metadata import MetadataDB
    >>> with MetadataDB("sqlite://") as db, db.transaction() as conn:
    ...     db.next_value(conn, "model_version")
    1
"""

from __future__ import annotations

from ferrostore.metadata import tables
from ferrostore.metadata.db import METADATA_URL_ENV, MetadataDB, default_metadata_url

__all__ = ["METADATA_URL_ENV", "MetadataDB", "default_metadata_url", "tables"]
