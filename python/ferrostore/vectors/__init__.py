"""Vector database, shaped like Chroma: ``import ferrostore.vectors as chromadb``.

Collections of records (id, embedding, document, metadata) searched by similarity (HNSW in
Rust: cosine, l2, inner product) with Chroma's ``where`` / ``where_document`` filters.
``Client()`` keeps collections in a temporary folder; ``PersistentClient(path)`` on disk, shared
by processes. Documents and query texts are embedded with the default embedding function
(all-MiniLM-L6-v2, offline) unless embeddings are given. See
:mod:`ferrostore.vectors.collection` for where ferrostore differs from Chroma.

Example:
    >>> import ferrostore.vectors as chromadb
    >>> client = chromadb.Client()
    >>> docs = client.create_collection("docs", embedding_function=None)
    >>> docs.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]],
    ...          metadatas=[{"dept": "housing"}, {"dept": "health"}])
    >>> docs.query(query_embeddings=[[1.0, 0.1]], n_results=1, where={"dept": "health"})["ids"]
    [['b']]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ferrostore.vectors.client import Client, ClientAPI, EphemeralClient, PersistentClient
from ferrostore.vectors.collection import Collection
from ferrostore.vectors.types import (
    ID,
    Document,
    Documents,
    Embedding,
    Embeddings,
    GetResult,
    IDs,
    Include,
    Metadata,
    Metadatas,
    QueryResult,
    UpdateMetadata,
    Where,
    WhereDocument,
)

if TYPE_CHECKING:
    from ferrostore.vectors.embeddings import DefaultEmbeddingFunction, EmbeddingFunction

__all__ = [
    "ID",
    "Client",
    "ClientAPI",
    "Collection",
    "DefaultEmbeddingFunction",
    "Document",
    "Documents",
    "Embedding",
    "EmbeddingFunction",
    "Embeddings",
    "EphemeralClient",
    "GetResult",
    "IDs",
    "Include",
    "Metadata",
    "Metadatas",
    "PersistentClient",
    "QueryResult",
    "UpdateMetadata",
    "Where",
    "WhereDocument",
]

_LAZY = {"DefaultEmbeddingFunction", "EmbeddingFunction"}


def __getattr__(name: str) -> Any:
    # The embedding module pulls in the model runtime: import it only when asked for.
    if name in _LAZY:
        from ferrostore.vectors import embeddings

        return getattr(embeddings, name)
    raise AttributeError(f"module 'ferrostore.vectors' has no attribute {name!r}")
