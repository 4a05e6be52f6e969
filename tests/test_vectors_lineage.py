"""Vector collection writes are recorded in lineage, linked to their documents' sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ferrostore.vectors as chromadb
from ferrostore.errors import NotFound
from ferrostore.lineage import questions


def test_collection_writes_are_downstream_of_their_sources(tmp_path: Path) -> None:
    client = chromadb.PersistentClient(str(tmp_path / "vectors"))
    collection = client.create_collection("policies", metadata={"hnsw:space": "cosine"})
    rng = np.random.default_rng(0)
    collection.add(
        ids=["a", "b", "c"],
        embeddings=rng.normal(size=(3, 8)).astype(np.float32),
        metadatas=[{"source": "housing.pdf"}, {"source": "housing.pdf"}, {"dept": "health"}],
    )

    usage = questions.uses(tmp_path / "vectors" / "metadata.db", "housing.pdf")

    collections = [a for a in usage.graph.artifacts if a.type == "ferrostore.VectorCollection"]
    assert [c.name for c in collections] == ["policies"]
    assert collections[0].properties["dimension"] == 8
    writes = [e for e in usage.graph.executions if e.type == "ferrostore.VectorWrite"]
    assert [w.properties["count"] for w in writes] == [3]
    # Records without a source name none.
    with pytest.raises(NotFound, match=r"health\.pdf"):
        questions.uses(tmp_path / "vectors" / "metadata.db", "health.pdf")
