"""The types of the vector database API, shaped like Chroma's ``chromadb.api.types``.

Results are plain dicts (``TypedDict``), as in Chroma: ``get`` returns a :class:`GetResult`
with one entry per record, ``query`` a :class:`QueryResult` with one list per query.
Embeddings come back as NumPy arrays (float32); distances as Python floats.

Example:
    >>> from ferrostore.vectors.types import INCLUDE_VALUES
    >>> sorted(INCLUDE_VALUES)
    ['data', 'distances', 'documents', 'embeddings', 'metadatas', 'uris']
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypedDict, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ID",
    "INCLUDE_VALUES",
    "Document",
    "Documents",
    "Embedding",
    "Embeddings",
    "GetResult",
    "IDs",
    "Include",
    "IncludeItem",
    "Metadata",
    "MetadataValue",
    "Metadatas",
    "OneOrMany",
    "QueryResult",
    "UpdateMetadata",
    "Where",
    "WhereDocument",
]

T = TypeVar("T")

OneOrMany: TypeAlias = T | list[T]
"""A single value or a list of them: ``ids="a"`` is ``ids=["a"]``, as in Chroma."""

ID: TypeAlias = str
"""A record id: a non-empty string, unique within a collection."""

IDs: TypeAlias = list[ID]
"""A list of record ids."""

Document: TypeAlias = str
"""A record's text."""

Documents: TypeAlias = list[Document]
"""A list of documents."""

MetadataValue: TypeAlias = str | int | float | bool
"""A metadata value: metadata are flat dicts of these."""

Metadata: TypeAlias = Mapping[str, MetadataValue]
"""A record's (or a collection's) metadata: a flat, non-empty dict."""

UpdateMetadata: TypeAlias = Mapping[str, MetadataValue | None]
"""Metadata given to ``update``: merged key-wise into the stored one, ``None`` deletes a key."""

Metadatas: TypeAlias = list[Metadata]
"""A list of metadata dicts."""

Embedding: TypeAlias = Sequence[float] | NDArray[Any]
"""One embedding: a list of numbers or a 1-D NumPy array."""

Embeddings: TypeAlias = Sequence[Embedding] | NDArray[Any]
"""Several embeddings: a list of them or a 2-D NumPy array."""

Where: TypeAlias = dict[str, Any]
"""A metadata filter in Chroma's grammar, e.g. ``{"year": {"$gte": 2020}}``.

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin`` on a key, combined with ``$and`` / ``$or``.
"""

WhereDocument: TypeAlias = dict[str, Any]
"""A document filter in Chroma's grammar, e.g. ``{"$contains": "housing"}``.

Operators: ``$contains $not_contains $regex $not_regex``, combined with ``$and`` / ``$or``.
"""

IncludeItem: TypeAlias = Literal[
    "documents", "embeddings", "metadatas", "distances", "uris", "data"
]
"""What a ``get`` or ``query`` can return besides the ids."""

Include: TypeAlias = list[IncludeItem]
"""The ``include=`` argument of ``get`` and ``query``."""

INCLUDE_VALUES: frozenset[str] = frozenset(
    ("documents", "embeddings", "metadatas", "distances", "uris", "data")
)
"""Every value ``include=`` accepts (``distances`` in ``query`` only)."""


class GetResult(TypedDict):
    """The result of ``Collection.get`` and ``peek``: one entry per record, in insertion order.

    Fields that were not included are ``None``. ``embeddings`` is a 2-D float32 array.
    """

    ids: list[ID]
    embeddings: NDArray[np.float32] | None
    documents: list[str | None] | None
    uris: list[str | None] | None
    data: None
    metadatas: list[dict[str, MetadataValue] | None] | None
    included: list[str]


class QueryResult(TypedDict):
    """The result of ``Collection.query``: for each query, its results nearest first.

    Fields that were not included are ``None``. ``embeddings`` holds one 2-D float32 array per
    query; ``distances`` are Chroma's: squared L2 for ``l2``, ``1 - dot`` for ``ip``,
    ``1 - cosine similarity`` for ``cosine``.
    """

    ids: list[list[ID]]
    embeddings: list[NDArray[np.float32]] | None
    documents: list[list[str | None]] | None
    uris: list[list[str | None]] | None
    data: None
    metadatas: list[list[dict[str, MetadataValue] | None]] | None
    distances: list[list[float]] | None
    included: list[str]


CollectionId: TypeAlias = uuid.UUID
"""A collection's id."""
