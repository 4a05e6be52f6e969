"""Worker functions of the vector database's multi-process tests (tests/test_vectors_api.py).

They run in "spawn" children, so they live in an importable module and take picklable
arguments. Batches are deterministic: batch ``b`` holds ids ``b{b}-{i}`` and embeddings drawn
from a generator seeded with ``b``, so the parent can rebuild any batch without the child.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import numpy as np

import ferrostore.vectors as chromadb

DIM = 16
BATCH = 2000


def batch(b: int) -> tuple[list[str], np.ndarray, list[dict[str, int]]]:
    """Ids, embeddings and metadata of batch ``b``."""
    rng = np.random.default_rng(1000 + b)
    ids = [f"b{b}-{i}" for i in range(BATCH)]
    return ids, rng.normal(size=(BATCH, DIM)).astype(np.float32), [{"batch": b}] * BATCH


def read_collection(path: str, name: str, probe: list[float], results: Any) -> None:
    """Report ``("ok", (count, ids, nearest id of probe, documents))`` of a collection."""
    try:
        client = chromadb.PersistentClient(path)
        collection = client.get_collection(name, embedding_function=None)
        got = collection.get(include=["documents"])
        nearest = collection.query(query_embeddings=[probe], n_results=1, include=[])
        results.put(("ok", (collection.count(), got["ids"], nearest["ids"][0], got["documents"])))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def add_batches_forever(path: str, name: str, ack_file: str) -> None:
    """Add batch after batch; after each add returns, append its number to ``ack_file``."""
    client = chromadb.PersistentClient(path)
    collection = client.get_collection(name, embedding_function=None)
    with open(ack_file, "a") as acks:
        for b in range(10_000):
            ids, embeddings, metadatas = batch(b)
            collection.add(ids=ids, embeddings=embeddings, metadatas=metadatas)
            acks.write(f"{b}\n")
            acks.flush()
            os.fsync(acks.fileno())


def query_before_and_after_go(
    path: str, name: str, probe: list[float], ready: Any, go: Any, results: Any
) -> None:
    """Query a collection, set ``ready``, wait for ``go``, query again.

    Reports ``("ok", (nearest ids before, class name of the error after or None))``.
    """
    try:
        client = chromadb.PersistentClient(path)
        collection = client.get_collection(name, embedding_function=None)
        before = collection.query(query_embeddings=[probe], n_results=1, include=[])["ids"][0]
        ready.set()
        go.wait(60)
        try:
            collection.query(query_embeddings=[probe], n_results=1, include=[])
            after = None
        except Exception as err:  # the error's class is what the parent checks
            after = type(err).__name__
        results.put(("ok", (before, after)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
