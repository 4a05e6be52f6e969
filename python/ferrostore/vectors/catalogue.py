"""The catalogue of vector collections in the metadata database (table ``vector_collections``).

One row per collection: its name, id, dimension (``None`` until the first add), distance
space, HNSW parameters, the user's collection metadata, creation and update times, and the
record count as of the last write made through :mod:`ferrostore.vectors`. Lineage and the
declared stack read collections from here.

Example:
    >>> from ferrostore.metadata import MetadataDB
    >>> from ferrostore.vectors.catalogue import CollectionRecord, create, get_by_name
    >>> with MetadataDB("sqlite://") as db:
    ...     _ = create(db, CollectionRecord.new("docs", None, {}))
    ...     get_by_name(db, "docs").space
    'l2'
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ferrostore.errors import AlreadyExists, InvalidArgument, NotFound
from ferrostore.metadata import MetadataDB
from ferrostore.metadata.tables import vector_collections as table

__all__ = [
    "DEFAULT_PARAMS",
    "CollectionRecord",
    "count",
    "create",
    "delete",
    "get_by_id",
    "get_by_name",
    "list_all",
    "modify",
    "set_dimension",
    "set_record_count",
]

DEFAULT_PARAMS: dict[str, Any] = {"space": "l2", "m": 16, "ef_construction": 100, "ef_search": 100}
"""Engine parameters of a collection whose metadata does not set them: Chroma's defaults."""


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclasses.dataclass(frozen=True)
class CollectionRecord:
    """One row of the catalogue.

    Attributes:
        id: The collection's UUID (its folder is ``collections/<id>``).
        name: Unique name.
        dimension: Fixed by the first add; ``None`` before it.
        space: cosine, l2 or ip.
        m: HNSW graph degree.
        ef_construction: HNSW build breadth.
        ef_search: HNSW search breadth.
        metadata: The collection metadata as the user gave it (``None`` when none).
        record_count: Records as of the last write through the API.
        created_at: Creation time, microseconds since the epoch (UTC).
        updated_at: Last change, microseconds since the epoch (UTC).
    """

    id: uuid.UUID
    name: str
    dimension: int | None
    space: str
    m: int
    ef_construction: int
    ef_search: int
    metadata: dict[str, Any] | None
    record_count: int
    created_at: int
    updated_at: int

    @classmethod
    def new(cls, name: str, metadata: dict[str, Any] | None, params: dict[str, Any]) -> Self:
        """A record for a new collection: a fresh id, params over :data:`DEFAULT_PARAMS`."""
        merged = {**DEFAULT_PARAMS, **params}
        now = _now_us()
        return cls(
            id=uuid.uuid4(),
            name=name,
            dimension=None,
            space=str(merged["space"]),
            m=int(merged["m"]),
            ef_construction=int(merged["ef_construction"]),
            ef_search=int(merged["ef_search"]),
            metadata=None if metadata is None else dict(metadata),
            record_count=0,
            created_at=now,
            updated_at=now,
        )

    def _row(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "dimension": self.dimension,
            "space": self.space,
            "hnsw_m": self.m,
            "hnsw_construction_ef": self.ef_construction,
            "hnsw_search_ef": self.ef_search,
            "metadata": None if self.metadata is None else json.dumps(self.metadata),
            "record_count": self.record_count,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def _from_row(cls, row: Any) -> Self:
        return cls(
            id=uuid.UUID(row.id),
            name=row.name,
            dimension=row.dimension,
            space=row.space,
            m=row.hnsw_m,
            ef_construction=row.hnsw_construction_ef,
            ef_search=row.hnsw_search_ef,
            metadata=None if row.metadata is None else json.loads(row.metadata),
            record_count=row.record_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def create(db: MetadataDB, record: CollectionRecord) -> CollectionRecord:
    """Insert a new collection.

    Raises:
        AlreadyExists: A collection of that name exists.
    """

    def insert(conn: Connection) -> None:
        exists = conn.execute(sa.select(table.c.id).where(table.c.name == record.name)).first()
        if exists is not None:
            raise AlreadyExists(f"Collection [{record.name}] already exists")
        conn.execute(table.insert().values(**record._row()))

    try:
        db.run_in_transaction(insert)
    except AlreadyExists as err:  # a concurrent create of the same name won the race
        raise AlreadyExists(f"Collection [{record.name}] already exists") from err
    return record


def get_by_name(db: MetadataDB, name: str) -> CollectionRecord:
    """The collection named ``name``.

    Raises:
        NotFound: No such collection.
    """
    with db.transaction(readonly=True) as conn:
        row = conn.execute(sa.select(table).where(table.c.name == name)).first()
    if row is None:
        raise NotFound(f"Collection [{name}] does not exist")
    return CollectionRecord._from_row(row)


def get_by_id(db: MetadataDB, collection_id: uuid.UUID) -> CollectionRecord | None:
    """The collection with this id, or ``None`` (deleted)."""
    with db.transaction(readonly=True) as conn:
        row = conn.execute(sa.select(table).where(table.c.id == str(collection_id))).first()
    return None if row is None else CollectionRecord._from_row(row)


def list_all(
    db: MetadataDB, *, limit: int | None = None, offset: int | None = None
) -> list[CollectionRecord]:
    """Every collection, oldest first."""
    query = sa.select(table).order_by(table.c.created_at, table.c.name)
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    with db.transaction(readonly=True) as conn:
        return [CollectionRecord._from_row(row) for row in conn.execute(query)]


def count(db: MetadataDB) -> int:
    """How many collections there are."""
    with db.transaction(readonly=True) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def delete(db: MetadataDB, name: str) -> CollectionRecord:
    """Delete the collection named ``name`` from the catalogue and return its record.

    Raises:
        NotFound: No such collection.
    """

    def remove(conn: Connection) -> CollectionRecord:
        row = conn.execute(sa.select(table).where(table.c.name == name)).first()
        if row is None:
            raise NotFound(f"Collection [{name}] does not exist")
        conn.execute(table.delete().where(table.c.id == row.id))
        return CollectionRecord._from_row(row)

    return db.run_in_transaction(remove)


def set_dimension(db: MetadataDB, collection_id: uuid.UUID, dimension: int) -> int:
    """Record the dimension of a collection if none is recorded; return the recorded one.

    Raises:
        NotFound: The collection was deleted.
    """

    def update(conn: Connection) -> int:
        conn.execute(
            table.update()
            .where(table.c.id == str(collection_id), table.c.dimension.is_(None))
            .values(dimension=dimension, updated_at=_now_us())
        )
        stored = conn.execute(
            sa.select(table.c.dimension).where(table.c.id == str(collection_id))
        ).first()
        if stored is None:
            raise NotFound(f"Collection {collection_id} does not exist")
        return int(stored.dimension)

    return db.run_in_transaction(update)


def set_record_count(db: MetadataDB, collection_id: uuid.UUID, record_count: int) -> None:
    """Record the number of records of a collection after a write."""

    def update(conn: Connection) -> None:
        conn.execute(
            table.update()
            .where(table.c.id == str(collection_id))
            .values(record_count=record_count, updated_at=_now_us())
        )

    db.run_in_transaction(update)


def modify(
    db: MetadataDB,
    collection_id: uuid.UUID,
    *,
    name: str | None,
    metadata: dict[str, Any] | None,
    ef_search: int | None,
) -> CollectionRecord:
    """Rename a collection and/or replace its metadata; return the new record.

    Raises:
        AlreadyExists: Another collection has the new name.
        NotFound: The collection was deleted.
        InvalidArgument: Nothing to change.
    """
    if name is None and metadata is None:
        raise InvalidArgument("modify needs a new name or new metadata")

    def update(conn: Connection) -> CollectionRecord:
        row = conn.execute(sa.select(table).where(table.c.id == str(collection_id))).first()
        if row is None:
            raise NotFound(f"Collection {collection_id} does not exist")
        values: dict[str, Any] = {"updated_at": _now_us()}
        if name is not None and name != row.name:
            taken = conn.execute(sa.select(table.c.id).where(table.c.name == name)).first()
            if taken is not None:
                raise AlreadyExists(f"Collection [{name}] already exists")
            values["name"] = name
        if metadata is not None:
            values["metadata"] = json.dumps(metadata)
        if ef_search is not None:
            values["hnsw_search_ef"] = ef_search
        conn.execute(table.update().where(table.c.id == row.id).values(**values))
        new = conn.execute(sa.select(table).where(table.c.id == row.id)).one()
        return CollectionRecord._from_row(new)

    return db.run_in_transaction(update)
