"""Type stubs of the compiled module ``ferrostore._core`` (see ``rust/ferrostore-py``)."""

import os
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

__version__: str

class KeyReadPlan:
    """Views, features and output names of :meth:`OnlineStore.read_into`, resolved once."""

    def __init__(self, views: Sequence[tuple[str, list[str], list[str], list[str]]]) -> None:
        """``views``: (view, join key names, feature names, output names) per view."""

class OnlineStore:
    """An LMDB online store folder; use :class:`ferrostore.features.OnlineStore`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        """Open (creating if needed) the store in ``path``."""
    @property
    def path(self) -> str:
        """The store's folder."""
    def set_cache_bytes(self, bytes: int) -> None:
        """Set this process's memory budget for views kept in memory (0: none)."""
    def cache_bytes_used(self) -> int:
        """The bytes of memory this process holds for views kept in memory."""
    def preload(self, view: str) -> bool:
        """Load a view into memory now; ``False`` when it does not fit the budget."""
    def register_view(
        self,
        name: str,
        join_keys: list[tuple[str, str]],
        features: list[tuple[str, str]],
        *,
        ttl_micros: int | None = None,
        on_schema_change: str = "error",
    ) -> dict[str, Any]:
        """Register a view; returns its schema as a dict."""
    def view(self, name: str) -> dict[str, Any]:
        """The schema of a view as a dict."""
    def views(self) -> list[dict[str, Any]]:
        """Every view's schema."""
    def write(
        self,
        view: str,
        data: Any,
        *,
        timestamp_column: str = "event_timestamp",
        created_column: str | None = None,
    ) -> tuple[int, int, int]:
        """Write Arrow data; returns (rows, written, skipped)."""
    def write_chunks(
        self,
        view: str,
        chunks: Iterable[Any],
        *,
        timestamp_column: str = "event_timestamp",
        created_column: str | None = None,
    ) -> tuple[int, int, int]:
        """Write every chunk an iterable yields in one transaction; (rows, written, skipped)."""
    def read(
        self,
        requests: list[tuple[str, list[str] | None]],
        entities: pa.RecordBatch,
        *,
        now_micros: int | None = None,
    ) -> tuple[pa.RecordBatch, int]:
        """Batch read: one batch [values | statuses | event times] and the value count."""
    def read_one(
        self,
        view: str,
        key: Sequence[int | str | bytes],
        features: Sequence[str] | None = None,
        *,
        now_micros: int | None = None,
        with_status: bool = False,
    ) -> Any:
        """One-entity read: a dict, or (dict, status bytes, event µs) with ``with_status``."""
    def read_into(
        self,
        plan: KeyReadPlan,
        columns: dict[str, list[Any]],
        rows: int,
        out: dict[str, Any],
        statuses: dict[str, Any],
        *,
        now_micros: int | None = None,
    ) -> None:
        """Key-value read: fills ``out`` (name to values) and ``statuses`` (name to bytes)."""
    def count(self, view: str) -> int:
        """Entities stored for a view."""
    def clear_view(self, view: str) -> int:
        """Delete a view's rows; returns how many."""
    def delete_view(self, view: str) -> None:
        """Delete a view and its rows."""
    def drop_all(self) -> None:
        """Delete every view and row."""

def point_in_time_join(
    entities: Any,
    features: Any,
    *,
    entity_keys: list[str],
    feature_keys: list[str],
    entity_timestamp: str,
    feature_timestamp: str,
    created_timestamp: str | None = None,
    ttl_micros: int | None = None,
    columns: list[tuple[str, str]],
) -> pa.RecordBatch:
    """Join feature rows onto entity rows as of each entity row's time.

    One output row per entity row, in input order, one column per ``(source, output)``
    pair of ``columns``: the feature row with the same key whose event time is at or before
    the entity time and within ``ttl_micros`` of it (ties: greatest created time), else null.
    ``features`` may be a stream of batches (an Arrow C stream, read once): each batch keeps
    only its rows inside the entity rows' time window as it is read.
    """

class VectorCollection:
    """A vector collection folder; use :mod:`ferrostore.vectors` for Chroma's API."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dim: int | None,
        space: str = "cosine",
        m: int = 16,
        ef_construction: int = 128,
        ef_search: int = 64,
        quantization: str | None = None,
        map_size: int | None = None,
    ) -> None:
        """Open (creating with ``dim`` if needed) the collection in ``path``."""
    @property
    def dim(self) -> int:
        """The vectors' dimension."""
    @property
    def space(self) -> str:
        """``l2``, ``ip`` or ``cosine``."""
    @property
    def quantization(self) -> str:
        """How the graph stores vectors: ``bf16``, ``f16``, ``f32`` or ``i8``."""
    @property
    def path(self) -> str:
        """The collection's folder."""
    def count(self) -> int:
        """Live records."""
    def write(
        self,
        ids: list[str],
        embeddings: Any | None,
        documents: list[str | None] | None,
        metadatas: str | None,
        *,
        mode: str,
    ) -> None:
        """Add, upsert or update records in one transaction.

        ``metadatas`` is one JSON array with an object (or null) per id.
        """
    def delete(
        self,
        ids: list[str] | None = None,
        where: dict[str, Any] | None = None,
        where_document: dict[str, Any] | None = None,
    ) -> int:
        """Delete matching records; returns how many.

        Filters are validated with Chroma's rules (``InvalidArgument`` naming the part).
        """
    def get(
        self,
        ids: list[str] | None = None,
        where: dict[str, Any] | None = None,
        where_document: dict[str, Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_embeddings: bool = False,
    ) -> tuple[list[str], Any | None, list[str | None], list[str | None]]:
        """Matching records in insertion order: ids, embeddings, documents, metadata JSON."""
    def query(
        self,
        queries: Any,
        n_results: int,
        where: dict[str, Any] | None = None,
        where_document: dict[str, Any] | None = None,
        include_embeddings: bool = False,
        include_documents: bool = True,
        include_metadatas: bool = True,
    ) -> tuple[
        list[list[str]],
        list[list[float]],
        list[list[str | None]] | None,
        list[list[str | None]] | None,
        Any | None,
    ]:
        """Nearest records per query: ids, distances, documents, metadata JSON, embeddings.

        Documents, metadata and embeddings are ``None`` when not included.
        """
    def set_search_ef(self, ef: int) -> None:
        """Set the graph search expansion for this process."""
    def checkpoint(self) -> None:
        """Save the graph so reopening does not rebuild it."""
    def is_deleted(self) -> bool:
        """Whether the collection was deleted (by any process) since it was opened."""
    def checkpoint_if_behind(self) -> bool:
        """Save the graph if re-inserting its unsaved records would cost more (returns whether)."""
    def compact(self) -> None:
        """Rebuild the graph without deleted records."""

def check_filters(
    where: dict[str, Any] | None = None, where_document: dict[str, Any] | None = None
) -> None:
    """Validate filters as a collection's ``get``, ``query`` and ``delete`` do.

    Raises ``InvalidArgument`` naming the malformed part.
    """

def mark_collection_deleted(path: str | os.PathLike[str]) -> None:
    """Mark the collection in folder ``path`` deleted for every process that has it open.

    Call it before removing the folder; open handles then report ``is_deleted()``.
    """
