"""Vector search side by side: ferrostore against usearch, hnswlib, FAISS and Chroma.

Usage::

    python benches/vectors_side_by_side.py [--engines a,b,...] [--queries 1000]
        [--chroma-python /tmp/chromaenv/bin/python] [--json-out FILE]
    python benches/vectors_side_by_side.py --synthetic [--n 1000000] [--dim 128]

Data (default): ``../shared/datasets/minilm-debian`` (50k x 384 MiniLM vectors stored as
float16, upcast and re-normalised as its README says; 1,000 queries with exact ground truth;
the six ``where`` filters of ``filters.json`` with ``gt_filtered.npz``) plus one ~0.1% filter
built here, ``{"$and": [{"bucket": {"$lt": 1}}, {"section": "libs"}]}``, whose exact ground
truth is computed with numpy (checked against ``gt_filtered.npz`` on a given filter first).
``--synthetic`` instead generates a seeded clustered set (``--n`` x ``--dim``, unit vectors,
1,000 queries, ground truth by FAISS exact search) with a uniform ``bucket`` field for filters
at 50/10/1/0.1% and a ``cluster`` field for a correlated ~1% filter.

Every engine runs in its own subprocess (a fresh interpreter; Chroma's with the interpreter
given by ``--chroma-python`` when chromadb is kept out of the shared environment) on the same
data files, and hands its numbers back as JSON:

* ``ferrostore``: ``ferrostore.vectors.PersistentClient`` (Chroma's API) on a temporary folder,
  ``collection.add`` in batches of 5,000, queried through ``collection.query`` (the product
  path) and, in the same process, through the engine ``ferrostore._core.VectorCollection``
  directly (to split the Python layer's cost from the engine's);
* ``hnswlib`` (space ``cosine``; filtered with a Python ``filter`` callable);
* ``faiss-hnsw`` (``IndexHNSWFlat``, inner product; filtered with ``IDSelectorBitmap``);
  FAISS builds and batches on every core, one query per call on one OpenMP thread (its
  OpenMP split of a single query stalls badly on a shared 2-core machine);
* ``faiss-flat`` (``IndexFlatIP``; filtered = an ``IndexFlatIP`` over the matching rows,
  built per filter outside the timed loop);
* ``usearch`` (the Python package, metric ``cos``, f32; its Python API has no filtered
  search, so it has no filtered numbers);
* ``chroma``: ``chromadb.PersistentClient``, ``collection.add`` in batches of 5,000,
  ``collection.query(include=["distances"])``, filters as ``where``.

ferrostore and Chroma get the same ids (row numbers as strings), metadata (package, section,
priority, installed_size, arch, bucket) and documents (the text). All HNSW graphs use M=16,
ef_construction=128. For each engine: build time (add of every vector), RSS growth over the
build (``/proc/self/status``; anonymous and file-backed separately) per vector, then
recall@10 and queries per second over a sweep of ef values, one query per call and all
queries in one call; the smallest ef reaching recall@10 >= 0.95 one query per call is the
engine's reported point, measured again (median of 3 passes, 9 batched calls). Passes of
every query shorter than half a second (fast filtered engines finish 1,000 queries in a few
milliseconds) are repeated until they add up to it, and their median taken, for every engine
alike. Timed passes run with Python's cycle collector paused (as ``timeit`` does) for every
engine. Filtered: per filter, one query per
call, ef starting at the engine's reported point and doubling until recall@10 >= 0.95 (at
most 4 steps); slow peers run a time-boxed subset of the queries (Chroma at most 200).
Every timed pass, of every engine, follows a few untimed queries (the last ones of the
set): one-off work (a filter's first evaluation, FAISS building its subset, cold caches)
stays out of the rates, which are steady-state ones.

Prints a table per section, then one line per target of the issue (met / not met). Nothing
here asserts a time; the machine is shared, so numbers are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
DEFAULT_DATA = HERE.parents[2] / "shared" / "datasets" / "minilm-debian"
K = 10
M = 16
EF_CONSTRUCTION = 128
EF_SWEEP = (16, 20, 24, 28, 32, 40, 48, 64, 96, 128, 192, 256, 384, 512)
TARGET_RECALL = 0.95
ADD_BATCH = 5_000
META_FIELDS = ("package", "section", "priority", "installed_size", "arch", "bucket")
ENGINES = ("ferrostore", "hnswlib", "faiss-hnsw", "faiss-flat", "usearch", "chroma")
#: Untimed queries before each timed pass (see the module docstring).
WARMUP_QUERIES = 10
EXTRA_FILTER = {
    "name": "and_0.1pct",
    "where": {"$and": [{"bucket": {"$lt": 1}}, {"section": "libs"}]},
}


# --------------------------------------------------------------------------- memory


def rss() -> dict[str, int]:
    """This process's resident set (bytes): total, anonymous and file-backed."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out


def folder_bytes(path: str | Path) -> int:
    """Bytes on disk (allocated blocks) under ``path``."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


# --------------------------------------------------------------------------- filters


def eval_where(where: dict[str, Any], columns: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean mask of the rows matching a Chroma ``where`` (the operators used here)."""
    n = len(next(iter(columns.values())))
    mask = np.ones(n, dtype=bool)
    for key, cond in where.items():
        if key == "$and":
            for sub in cond:
                mask &= eval_where(sub, columns)
        elif key == "$or":
            any_ = np.zeros(n, dtype=bool)
            for sub in cond:
                any_ |= eval_where(sub, columns)
            mask &= any_
        else:
            col = columns[key]
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            for op, value in ops.items():
                if op == "$eq":
                    mask &= col == value
                elif op == "$ne":
                    mask &= col != value
                elif op == "$lt":
                    mask &= col < value
                elif op == "$lte":
                    mask &= col <= value
                elif op == "$gt":
                    mask &= col > value
                elif op == "$gte":
                    mask &= col >= value
                elif op == "$in":
                    mask &= np.isin(col, value)
                elif op == "$nin":
                    mask &= ~np.isin(col, value)
                else:
                    raise ValueError(f"operator {op} not handled by this benchmark")
    return mask


def exact_topk(base: np.ndarray, queries: np.ndarray, rows: np.ndarray, k: int = 100) -> np.ndarray:
    """Exact top-``k`` rows (ids, best first, ties by smaller id) by inner product, -1 padded."""
    out = np.full((len(queries), k), -1, dtype=np.int32)
    sub = base[rows]
    kk = min(k, len(rows))
    for start in range(0, len(queries), 250):
        scores = queries[start : start + 250] @ sub.T
        for i, row in enumerate(scores):
            # Sort by (-score, id); rows are ascending so a stable sort keeps smaller ids first.
            order = np.argsort(-row, kind="stable")[:kk]
            out[start + i, :kk] = rows[order]
    return out


def recall_at_k(found: Sequence[Sequence[int]], gt: np.ndarray, k: int = K) -> float:
    """Mean recall@k; a query whose filter matches fewer than k rows divides by that count."""
    total = 0.0
    for f, g in zip(found, gt, strict=True):
        truth = {int(x) for x in g[:k] if x >= 0}
        if not truth:
            total += 1.0
            continue
        total += len({int(x) for x in list(f)[:k]} & truth) / len(truth)
    return total / len(gt)


# --------------------------------------------------------------------------- data sets


def prepare_minilm(data: Path, out: Path, n_queries: int) -> dict[str, Any]:
    """Canonical float32 base, queries, ground truth and filters (masks, gt) under ``out``."""
    base = np.load(data / "base_f16.npy").astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = np.load(data / "queries.npy")[:n_queries]
    gt = np.load(data / "gt_ids.npy")[:n_queries]
    meta = [json.loads(line) for line in (data / "base_meta.jsonl").read_text().splitlines()]
    columns = {
        "bucket": np.array([m["bucket"] for m in meta]),
        "installed_size": np.array([m["installed_size"] for m in meta]),
        "section": np.array([m["section"] for m in meta], dtype=object),
        "arch": np.array([m["arch"] for m in meta], dtype=object),
        "priority": np.array([m["priority"] for m in meta], dtype=object),
    }
    spec = json.loads((data / "filters.json").read_text())
    gt_filtered = np.load(data / "gt_filtered.npz")
    filters = []
    masks = {}
    gts = {}
    for f in spec["filters"]:
        mask = eval_where(f["where"], columns)
        if int(mask.sum()) != f["n_match"]:
            raise SystemExit(f"filter {f['name']}: {mask.sum()} matches, expected {f['n_match']}")
        masks[f["name"]] = mask
        gts[f["name"]] = gt_filtered[f["name"]][:n_queries]
        filters.append({"name": f["name"], "where": f["where"], "n_match": f["n_match"]})
    # Our own ground-truth code must agree with the given one before it is trusted.
    check = spec["filters"][0]["name"]
    mine = exact_topk(base, queries[:50], np.flatnonzero(masks[check]), 100)
    agree = recall_at_k(mine, gts[check][:50])
    if agree < 0.999:
        raise SystemExit(f"numpy ground truth disagrees with gt_filtered[{check}]: {agree}")
    mask = eval_where(EXTRA_FILTER["where"], columns)
    masks[EXTRA_FILTER["name"]] = mask
    gts[EXTRA_FILTER["name"]] = exact_topk(base, queries, np.flatnonzero(mask), 100)
    filters.append({**EXTRA_FILTER, "n_match": int(mask.sum())})
    for f in filters:
        f["selectivity"] = f["n_match"] / len(base)
    metadatas = [{key: m[key] for key in META_FIELDS} for m in meta]
    documents = [m["text"] for m in meta]
    return save_dataset(
        out,
        "minilm-debian",
        base,
        queries,
        gt,
        filters,
        masks,
        gts,
        metadatas,
        documents,
        space_note="unit vectors, cosine",
    )


def prepare_synthetic(out: Path, n: int, dim: int, n_queries: int, seed: int) -> dict[str, Any]:
    """A seeded clustered set of unit vectors with ground truth by FAISS exact search."""
    import faiss

    rng = np.random.default_rng(seed)
    n_clusters = 1_000
    centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    cluster = rng.integers(0, n_clusters, n)
    base = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        base[start:stop] = centers[cluster[start:stop]] + 0.6 * rng.standard_normal(
            (stop - start, dim), dtype=np.float32
        )
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    q_cluster = rng.integers(0, n_clusters, n_queries)
    queries = centers[q_cluster] + 0.6 * rng.standard_normal((n_queries, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(dim)
    index.add(base)
    _, gt = index.search(queries, 100)
    bucket = rng.integers(0, 1_000, n)
    columns = {"bucket": bucket, "cluster": cluster}
    wheres = [
        ("rand_50pct", {"bucket": {"$lt": 500}}),
        ("rand_10pct", {"bucket": {"$lt": 100}}),
        ("rand_1pct", {"bucket": {"$lt": 10}}),
        ("rand_0.1pct", {"bucket": {"$lt": 1}}),
        ("cluster_1pct", {"cluster": {"$lt": 10}}),
    ]
    filters, masks, gts = [], {}, {}
    for name, where in wheres:
        mask = eval_where(where, columns)
        rows = np.flatnonzero(mask)
        sub = faiss.IndexFlatIP(dim)
        sub.add(base[rows])
        _, local = sub.search(queries, 100)
        gts[name] = np.where(local >= 0, rows[np.maximum(local, 0)], -1).astype(np.int32)
        masks[name] = mask
        filters.append(
            {"name": name, "where": where, "n_match": len(rows), "selectivity": len(rows) / n}
        )
    metadatas = [
        {"bucket": int(b), "cluster": int(c)} for b, c in zip(bucket, cluster, strict=True)
    ]
    return save_dataset(
        out,
        f"synthetic {n}x{dim}",
        base,
        queries,
        gt.astype(np.int32),
        filters,
        masks,
        gts,
        metadatas,
        None,
        space_note="clustered, unit vectors, cosine",
    )


def save_dataset(
    out: Path,
    name: str,
    base: np.ndarray,
    queries: np.ndarray,
    gt: np.ndarray,
    filters: list[dict[str, Any]],
    masks: dict[str, np.ndarray],
    gts: dict[str, np.ndarray],
    metadatas: list[dict[str, Any]],
    documents: list[str] | None,
    space_note: str,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "base.npy", np.ascontiguousarray(base, dtype=np.float32))
    np.save(out / "queries.npy", np.ascontiguousarray(queries, dtype=np.float32))
    np.save(out / "gt.npy", gt)
    np.savez(out / "masks.npz", **masks)
    np.savez(out / "gt_filtered.npz", **gts)
    with open(out / "records.jsonl", "w") as f:
        for i, m in enumerate(metadatas):
            f.write(json.dumps([m, None if documents is None else documents[i]]) + "\n")
    info = {
        "name": name,
        "n": len(base),
        "dim": base.shape[1],
        "n_queries": len(queries),
        "filters": filters,
        "note": space_note,
    }
    (out / "info.json").write_text(json.dumps(info))
    return info


# --------------------------------------------------------------------------- timing


# A timed pass shorter than this is repeated (see measure_point), up to this many passes.
PASS_FLOOR_S = 0.5
MAX_SHORT_PASSES = 25
# Batched calls at each engine's reported point: one call of 1,000 queries takes 40-60 ms.
BATCH_REPEATS = 9


def run_single(
    search: Callable[[np.ndarray], Any],
    queries: np.ndarray,
    budget_s: float,
    min_queries: int,
    max_queries: int | None = None,
) -> tuple[list[Any], float]:
    """Run one query per call until all are done or ``budget_s`` passes (after a minimum).

    Returns the raw results (one per query run) and queries per second.
    """
    limit = len(queries) if max_queries is None else min(len(queries), max_queries)
    for q in queries[-WARMUP_QUERIES:]:
        search(q)
    results = []
    with gc_paused():
        start = time.perf_counter()
        deadline = start + budget_s
        for i in range(limit):
            results.append(search(queries[i]))
            if i + 1 >= min_queries and time.perf_counter() > deadline:
                break
        elapsed = time.perf_counter() - start
    return results, len(results) / elapsed


@contextlib.contextmanager
def gc_paused() -> Any:
    """Time without Python's cycle collector, as ``timeit`` does, for every engine alike.

    A pass keeps each query's result for its recall; results made of lists (Chroma's shape,
    which ours shares) then pile up in the collector's generations, and its full collections,
    which walk every object of the process (the metadata of 50k records here), land inside
    the timing at random. An application drops a result after reading it.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_batch(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[Any, float]:
    search(queries[-WARMUP_QUERIES:])
    with gc_paused():
        start = time.perf_counter()
        result = search(queries)
        elapsed = time.perf_counter() - start
    return result, len(queries) / elapsed


# --------------------------------------------------------------------------- engines
# An engine is an object with: build(base, ids, metadatas, documents); set_ef(ef);
# single(q) / batch(Q) returning raw results; ids(raw_single) / batch_ids(raw_batch) -> ids;
# and optionally filtered_single(q, name) / filtered_batch(Q, name), prepare_filter(...).
# "graph" says whether ef matters.


@contextlib.contextmanager
def omp_threads(faiss: Any, n: int) -> Iterator[None]:
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


class Hnswlib:
    label = "hnswlib"
    graph = True

    def __init__(self, dim: int) -> None:
        import hnswlib

        self.version = getattr(hnswlib, "__version__", "0.8")
        self.dim = dim
        self.filters: dict[str, Callable[[int], bool]] = {}
        self.failures: dict[str, int] = {}

    def build(self, base: np.ndarray, metadatas: Any, documents: Any) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="cosine", dim=self.dim)
        self.index.init_index(
            max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=100
        )
        self.index.add_items(base, np.arange(len(base)), num_threads=-1)

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(max(ef, K))

    def single(self, q: np.ndarray) -> Any:
        return self.index.knn_query(q, k=K)[0][0]

    def batch(self, qs: np.ndarray) -> Any:
        return self.index.knn_query(qs, k=K, num_threads=-1)[0]

    def prepare_filter(self, name: str, mask: np.ndarray, base: np.ndarray, where: Any) -> None:
        self.filters[name] = mask.tolist().__getitem__

    def filtered_single(self, q: np.ndarray, name: str) -> Any:
        try:
            return self.index.knn_query(q, k=K, filter=self.filters[name])[0][0]
        except RuntimeError:  # hnswlib raises when it finds fewer than k: count it as a miss
            self.failures[name] = self.failures.get(name, 0) + 1
            return np.empty(0, dtype=np.int64)

    def filtered_batch(self, qs: np.ndarray, name: str) -> Any:
        try:
            return self.index.knn_query(qs, k=K, num_threads=-1, filter=self.filters[name])[0]
        except RuntimeError:  # fewer than k for some query: run them one by one
            return [self.filtered_single(q, name) for q in qs]


class FaissHnsw:
    label = "faiss-hnsw"
    graph = True

    def __init__(self, dim: int) -> None:
        import faiss

        self.faiss = faiss
        self.version = faiss.__version__
        # One query per call runs on one OpenMP thread (FAISS otherwise splits a single query
        # over the database with OpenMP, which on a shared 2-core machine costs far more than
        # it gains); batches get every core (see omp_threads).
        faiss.omp_set_num_threads(1)
        self.dim = dim
        self.ef = 64
        self.selectors: dict[str, tuple[Any, np.ndarray]] = {}
        self.params: dict[tuple[str, int], Any] = {}

    def build(self, base: np.ndarray, metadatas: Any, documents: Any) -> None:
        self.index = self.faiss.IndexHNSWFlat(self.dim, M, self.faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        with omp_threads(self.faiss, os.cpu_count() or 1):
            self.index.add(base)

    def set_ef(self, ef: int) -> None:
        self.ef = ef
        self.index.hnsw.efSearch = ef

    def single(self, q: np.ndarray) -> Any:
        return self.index.search(q[None], K)[1][0]

    def batch(self, qs: np.ndarray) -> Any:
        with omp_threads(self.faiss, os.cpu_count() or 1):
            return self.index.search(qs, K)[1]

    def prepare_filter(self, name: str, mask: np.ndarray, base: np.ndarray, where: Any) -> None:
        bits = np.packbits(mask, bitorder="little")
        sel = self.faiss.IDSelectorBitmap(len(mask), self.faiss.swig_ptr(bits))
        self.selectors[name] = (sel, bits)  # keep the bitmap alive with its selector

    def _params(self, name: str) -> Any:
        key = (name, self.ef)
        params = self.params.get(key)
        if params is None:  # built once per filter and ef, outside the timed loop after that
            params = self.faiss.SearchParametersHNSW(sel=self.selectors[name][0], efSearch=self.ef)
            self.params[key] = params
        return params

    def filtered_single(self, q: np.ndarray, name: str) -> Any:
        return self.index.search(q[None], K, params=self._params(name))[1][0]

    def filtered_batch(self, qs: np.ndarray, name: str) -> Any:
        with omp_threads(self.faiss, os.cpu_count() or 1):
            return self.index.search(qs, K, params=self._params(name))[1]


class FaissFlat:
    label = "faiss-flat"
    graph = False

    def __init__(self, dim: int) -> None:
        import faiss

        self.faiss = faiss
        self.version = faiss.__version__
        # One query per call runs on one OpenMP thread (FAISS otherwise splits a single query
        # over the database with OpenMP, which on a shared 2-core machine costs far more than
        # it gains); batches get every core (see omp_threads).
        faiss.omp_set_num_threads(1)
        self.dim = dim
        self.subsets: dict[str, tuple[Any, np.ndarray]] = {}

    def build(self, base: np.ndarray, metadatas: Any, documents: Any) -> None:
        self.index = self.faiss.IndexFlatIP(self.dim)
        self.index.add(base)

    def set_ef(self, ef: int) -> None:
        pass

    def single(self, q: np.ndarray) -> Any:
        return self.index.search(q[None], K)[1][0]

    def batch(self, qs: np.ndarray) -> Any:
        with omp_threads(self.faiss, os.cpu_count() or 1):
            return self.index.search(qs, K)[1]

    def prepare_filter(self, name: str, mask: np.ndarray, base: np.ndarray, where: Any) -> None:
        rows = np.flatnonzero(mask)
        sub = self.faiss.IndexFlatIP(self.dim)
        sub.add(base[rows])
        self.subsets[name] = (sub, rows)

    def filtered_single(self, q: np.ndarray, name: str) -> Any:
        sub, rows = self.subsets[name]
        local = sub.search(q[None], K)[1][0]
        return rows[local[local >= 0]]

    def filtered_batch(self, qs: np.ndarray, name: str) -> Any:
        sub, rows = self.subsets[name]
        with omp_threads(self.faiss, os.cpu_count() or 1):
            local = sub.search(qs, K)[1]
        return [rows[r[r >= 0]] for r in local]


class Usearch:
    label = "usearch"
    graph = True

    def __init__(self, dim: int) -> None:
        import usearch

        self.version = usearch.__version__
        self.dim = dim

    def build(self, base: np.ndarray, metadatas: Any, documents: Any) -> None:
        from usearch.index import Index

        self.index = Index(
            ndim=self.dim, metric="cos", dtype="f32", connectivity=M, expansion_add=EF_CONSTRUCTION
        )
        self.index.add(np.arange(len(base), dtype=np.uint64), base)

    def set_ef(self, ef: int) -> None:
        self.index.expansion_search = ef

    def single(self, q: np.ndarray) -> Any:
        return self.index.search(q, K).keys

    def batch(self, qs: np.ndarray) -> Any:
        return self.index.search(qs, K).keys


class _ChromaShaped:
    """Shared by ferrostore's and Chroma's Chroma-shaped APIs."""

    graph = True

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.wheres: dict[str, Any] = {}
        self.tmp = tempfile.mkdtemp(prefix=f"vbench-{self.label}-")

    def build(self, base: np.ndarray, metadatas: Any, documents: Any) -> None:
        ids = [str(i) for i in range(len(base))]
        for start in range(0, len(base), ADD_BATCH):
            stop = start + ADD_BATCH
            self.col.add(
                ids=ids[start:stop],
                embeddings=base[start:stop],
                metadatas=metadatas[start:stop],
                documents=None if documents is None else documents[start:stop],
            )

    def single(self, q: np.ndarray) -> Any:
        return self.col.query(query_embeddings=q[None], n_results=K, include=["distances"])

    def batch(self, qs: np.ndarray) -> Any:
        return self.col.query(query_embeddings=qs, n_results=K, include=["distances"])

    @staticmethod
    def ids(raw: Any) -> list[int]:
        return [int(x) for x in raw["ids"][0]]

    @staticmethod
    def batch_ids(raw: Any) -> list[list[int]]:
        return [[int(x) for x in row] for row in raw["ids"]]

    def prepare_filter(self, name: str, mask: np.ndarray, base: np.ndarray, where: Any) -> None:
        self.wheres[name] = where

    def filtered_single(self, q: np.ndarray, name: str) -> Any:
        return self.col.query(
            query_embeddings=q[None], n_results=K, where=self.wheres[name], include=["distances"]
        )

    def filtered_batch(self, qs: np.ndarray, name: str) -> Any:
        return self.col.query(
            query_embeddings=qs, n_results=K, where=self.wheres[name], include=["distances"]
        )

    def disk_bytes(self) -> int:
        return folder_bytes(self.tmp)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class Ferrostore(_ChromaShaped):
    label = "ferrostore"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        import ferrostore
        import ferrostore.vectors as fsv

        self.version = ferrostore.__version__
        self.client = fsv.PersistentClient(self.tmp)
        self.col = self.client.create_collection(
            "bench",
            metadata={
                "hnsw:space": "cosine",
                "hnsw:M": M,
                "hnsw:construction_ef": EF_CONSTRUCTION,
                "hnsw:search_ef": 64,
            },
            embedding_function=None,
        )

    def set_ef(self, ef: int) -> None:
        self.col.modify(metadata={"hnsw:space": "cosine", "hnsw:search_ef": ef})

    @property
    def engine(self) -> Any:
        return self.col._engine()

    # The engine directly (ferrostore._core.VectorCollection.query), for the breakdown.
    def core_single(self, q: np.ndarray) -> Any:
        return self.engine.query(q[None], K, None, None, False, False, False)

    def core_batch(self, qs: np.ndarray) -> Any:
        return self.engine.query(qs, K, None, None, False, False, False)

    def core_filtered_single(self, q: np.ndarray, name: str) -> Any:
        return self.engine.query(q[None], K, self.wheres[name], None, False, False, False)

    @staticmethod
    def core_ids(raw: Any) -> list[int]:
        return [int(x) for x in raw[0][0]]

    @staticmethod
    def core_batch_ids(raw: Any) -> list[list[int]]:
        return [[int(x) for x in row] for row in raw[0]]


class Chroma(_ChromaShaped):
    label = "chroma"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        import chromadb
        from chromadb.config import Settings

        self.version = chromadb.__version__
        self.client = chromadb.PersistentClient(
            self.tmp, settings=Settings(anonymized_telemetry=False)
        )
        self.col = self.client.create_collection(
            "bench",
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "max_neighbors": M,
                    "ef_construction": EF_CONSTRUCTION,
                    "ef_search": 64,
                }
            },
            embedding_function=None,
        )

    def set_ef(self, ef: int) -> None:
        # Chroma stores the new ef_search but its loaded index keeps the old one: reopen the
        # client (outside any timed loop) so the index is loaded again with the new value.
        import chromadb
        from chromadb.api.client import SharedSystemClient
        from chromadb.config import Settings

        self.col.modify(configuration={"hnsw": {"ef_search": ef}})
        SharedSystemClient.clear_system_cache()
        self.client = chromadb.PersistentClient(
            self.tmp, settings=Settings(anonymized_telemetry=False)
        )
        self.col = self.client.get_collection("bench", embedding_function=None)
        self.col.query(query_embeddings=np.ones((1, self.dim), np.float32), n_results=K)


def make_engine(name: str, dim: int) -> Any:
    return {
        "ferrostore": Ferrostore,
        "hnswlib": Hnswlib,
        "faiss-hnsw": FaissHnsw,
        "faiss-flat": FaissFlat,
        "usearch": Usearch,
        "chroma": Chroma,
    }[name](dim)


def default_ids(raw: Any) -> list[int]:
    return [int(x) for x in raw if x >= 0]


def default_batch_ids(raw: Any) -> list[list[int]]:
    return [[int(x) for x in row if x >= 0] for row in raw]


# --------------------------------------------------------------------------- worker


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure_point(
    single: Callable[[np.ndarray], Any],
    batch: Callable[[np.ndarray], Any] | None,
    to_ids: Callable[[Any], list[int]],
    to_batch_ids: Callable[[Any], list[list[int]]],
    queries: np.ndarray,
    gt: np.ndarray,
    *,
    budget_s: float,
    min_queries: int,
    max_queries: int | None = None,
    repeats: int = 1,
    batch_repeats: int | None = None,
) -> dict[str, Any]:
    """Recall and rates of one point: the median of at least ``repeats`` passes.

    A pass over every query that takes less than ``PASS_FLOOR_S`` (a fast filtered engine
    runs 1,000 queries in a few milliseconds, where one stall of the machine moves the rate
    by a third) is repeated, for every engine alike, until the passes add up to the floor
    (at most ``MAX_SHORT_PASSES``); the rate is the median of the passes.
    """
    qps_runs = []
    raw: list[Any] = []
    spent = 0.0
    while len(qps_runs) < repeats or (spent < PASS_FLOOR_S and len(qps_runs) < MAX_SHORT_PASSES):
        raw, qps = run_single(single, queries, budget_s, min_queries, max_queries)
        qps_runs.append(qps)
        spent += len(raw) / qps
    found = [to_ids(r) for r in raw]
    point: dict[str, Any] = {
        "recall": recall_at_k(found, gt[: len(found)]),
        "qps": statistics.median(qps_runs),
        "n_queries": len(found),
    }
    if batch is not None:
        qs = queries if max_queries is None else queries[:max_queries]
        b_runs = []
        b_raw = None
        for _ in range(repeats if batch_repeats is None else batch_repeats):
            b_raw, b_qps = run_batch(batch, qs)
            b_runs.append(b_qps)
        point["batch_recall"] = recall_at_k(to_batch_ids(b_raw), gt[: len(qs)])
        point["batch_qps"] = statistics.median(b_runs)
    return point


def load_records(data_dir: Path) -> tuple[list[Any], list[Any] | None]:
    """The metadata and documents (``None`` for a set without texts) of a prepared set."""
    metadatas, documents = [], []
    with open(data_dir / "records.jsonl") as f:
        for line in f:
            m, d = json.loads(line)
            metadatas.append(m)
            documents.append(d)
    return metadatas, None if all(d is None for d in documents[:10]) else documents


def worker(engine_name: str, data_dir: Path, out_path: Path, opts: dict[str, Any]) -> None:
    info = json.loads((data_dir / "info.json").read_text())
    base = np.load(data_dir / "base.npy")
    queries = np.load(data_dir / "queries.npy")
    gt = np.load(data_dir / "gt.npy")
    masks = dict(np.load(data_dir / "masks.npz"))
    gts = dict(np.load(data_dir / "gt_filtered.npz"))
    chroma_shaped = engine_name in ("ferrostore", "chroma")
    metadatas, documents = load_records(data_dir) if chroma_shaped else (None, None)
    slow = engine_name == "chroma"
    eng = make_engine(engine_name, info["dim"])
    to_ids = getattr(eng, "ids", default_ids)
    to_batch_ids = getattr(eng, "batch_ids", default_batch_ids)
    result: dict[str, Any] = {"engine": engine_name, "version": eng.version, "n": len(base)}

    gc.collect()
    before = rss()
    t0 = time.perf_counter()
    eng.build(base, metadatas, documents)
    build_s = time.perf_counter() - t0
    gc.collect()
    after = rss()
    # The first query may finish deferred work (e.g. Chroma applying its log): time it apart.
    t0 = time.perf_counter()
    eng.single(queries[0])
    result["first_query_s"] = time.perf_counter() - t0
    result["build_s"] = build_s
    result["add_per_s"] = len(base) / build_s
    result["rss_before"] = before
    result["rss_after"] = after
    result["bytes_per_vector"] = (after["VmRSS"] - before["VmRSS"]) / len(base)
    result["anon_bytes_per_vector"] = (after["RssAnon"] - before["RssAnon"]) / len(base)
    if hasattr(eng, "disk_bytes"):
        result["disk_bytes_per_vector"] = eng.disk_bytes() / len(base)
    log(f"{engine_name}: built in {build_s:.1f}s, {result['bytes_per_vector']:.0f} B/vector RSS")

    budget = opts["budget_s"]
    # ---- unfiltered sweep
    sweep = []
    efs = EF_SWEEP if eng.graph else (0,)
    chosen = None
    for ef in efs:
        eng.set_ef(ef)
        point = measure_point(
            eng.single,
            eng.batch,
            to_ids,
            to_batch_ids,
            queries,
            gt,
            budget_s=budget,
            min_queries=200,
        )
        point["ef"] = ef
        if isinstance(eng, Ferrostore):
            core = measure_point(
                eng.core_single,
                eng.core_batch,
                eng.core_ids,
                eng.core_batch_ids,
                queries,
                gt,
                budget_s=budget,
                min_queries=200,
            )
            point["core"] = core
        sweep.append(point)
        log(
            f"{engine_name}: ef={ef} recall={point['recall']:.4f} qps={point['qps']:.0f} "
            f"batch={point['batch_qps']:.0f}"
        )
        if chosen is None and point["recall"] >= TARGET_RECALL:
            chosen = ef
        if point["recall"] >= 0.99 or (chosen is not None and ef >= 2 * chosen):
            break
    if chosen is None:
        chosen = max(sweep, key=lambda p: p["recall"])["ef"]
    result["sweep"] = sweep
    eng.set_ef(chosen)
    point = measure_point(
        eng.single,
        eng.batch,
        to_ids,
        to_batch_ids,
        queries,
        gt,
        budget_s=budget * 2,
        min_queries=min(len(queries), 200),
        repeats=3,
        batch_repeats=BATCH_REPEATS,
    )
    point["ef"] = chosen
    if isinstance(eng, Ferrostore):
        point["core"] = measure_point(
            eng.core_single,
            eng.core_batch,
            eng.core_ids,
            eng.core_batch_ids,
            queries,
            gt,
            budget_s=budget * 2,
            min_queries=len(queries),
            repeats=3,
        )
        # Chroma's default include (documents, metadatas, distances), for reference.
        default_inc = measure_point(
            lambda q: eng.col.query(query_embeddings=q[None], n_results=K),
            None,
            to_ids,
            to_batch_ids,
            queries,
            gt,
            budget_s=budget,
            min_queries=200,
        )
        point["default_include_qps"] = default_inc["qps"]
        # Fixed per-call cost probes: count() (refresh + lock) and a 1-row exact query.
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            eng.engine.count()
        point["count_call_us"] = (time.perf_counter() - t0) / n * 1e6
    result["chosen"] = point
    log(
        f"{engine_name}: chosen ef={chosen} recall={point['recall']:.4f} "
        f"qps={point['qps']:.0f} batch={point['batch_qps']:.0f}"
    )

    # ---- filtered
    filtered = {}
    if hasattr(eng, "filtered_single"):
        for f in info["filters"]:
            name = f["name"]
            eng.prepare_filter(name, masks[name], base, f["where"])
            tried = []
            ef = chosen
            steps = 2 if slow else 4
            for _ in range(steps):
                eng.set_ef(ef)
                p = measure_point(
                    lambda q, name=name: eng.filtered_single(q, name),
                    None,
                    to_ids,
                    to_batch_ids,
                    queries,
                    gts[name],
                    budget_s=opts["filtered_budget_s"] * (3 if slow else 1),
                    min_queries=50 if slow else 100,
                    max_queries=opts["chroma_filtered_queries"] if slow else None,
                )
                p["ef"] = ef
                # Calls that raised for finding fewer than k (hnswlib), counted as misses.
                p["failures"] = getattr(eng, "failures", {}).pop(name, 0)
                if isinstance(eng, Ferrostore):
                    p["core"] = measure_point(
                        lambda q, name=name: eng.core_filtered_single(q, name),
                        None,
                        eng.core_ids,
                        eng.core_batch_ids,
                        queries,
                        gts[name],
                        budget_s=opts["filtered_budget_s"],
                        min_queries=100,
                    )
                tried.append(p)
                log(
                    f"{engine_name}: {name} ef={ef} recall={p['recall']:.4f} "
                    f"qps={p['qps']:.1f} (n={p['n_queries']})"
                )
                if p["recall"] >= TARGET_RECALL or not eng.graph:
                    break
                ef *= 2
            best = tried[-1]
            if not slow and hasattr(eng, "filtered_batch"):
                # As many queries as the single-call run managed (keeps slow peers bounded).
                nb = best["n_queries"]
                b_raw, b_qps = run_batch(
                    lambda qs, name=name: eng.filtered_batch(qs, name), queries[:nb]
                )
                best["batch_qps"] = b_qps
                best["batch_recall"] = recall_at_k(to_batch_ids(b_raw), gts[name][:nb])
            best["tried"] = [(t["ef"], t["recall"], t["qps"]) for t in tried]
            filtered[name] = best
        eng.set_ef(chosen)
    result["filtered"] = filtered
    if hasattr(eng, "close"):
        eng.close()
    out_path.write_text(json.dumps(result))


# --------------------------------------------------------------------------- report


def fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n## {title}\n")
    print(
        "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for r in rows:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def verdict(
    label: str,
    ours: float | None,
    theirs: float | None,
    factor: float,
    higher_is_better: bool = True,
    unit: str = "",
) -> dict[str, Any]:
    if ours is None or theirs is None or theirs == 0:
        print(f"- {label}: n/a (missing measurement)")
        return {"target": label, "met": None}
    ratio = ours / theirs
    met = ratio >= factor if higher_is_better else ratio <= factor
    sign = ">=" if higher_is_better else "<="
    print(
        f"- {label}: {fmt(ours, ',.1f')}{unit} vs {fmt(theirs, ',.1f')}{unit}: "
        f"ratio {ratio:.2f} (target {sign} {factor}) -> {'MET' if met else 'NOT MET'}"
    )
    return {"target": label, "ratio": ratio, "met": met}


def report(info: dict[str, Any], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    print(
        f"\n# {info['name']}: {info['n']:,} x {info['dim']}, {info['n_queries']} queries, "
        f"k={K}, M={M}, ef_construction={EF_CONSTRUCTION} ({info['note']}); "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus"
    )
    versions = ", ".join(f"{r['engine']} {r['version']}" for r in results.values())
    print(f"versions: {versions}")

    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                fmt(r["build_s"], ".1f"),
                fmt(r["add_per_s"]),
                fmt(r["first_query_s"], ".3f"),
                fmt(r["bytes_per_vector"]),
                fmt(r["anon_bytes_per_vector"]),
                fmt(r.get("disk_bytes_per_vector")),
            ]
        )
    table(
        "Build (add every vector) and memory",
        ["engine", "build s", "adds/s", "1st query s", "RSS B/vec", "anon B/vec", "disk B/vec"],
        rows,
    )

    rows = []
    for name, r in results.items():
        for p in r["sweep"]:
            rows.append(
                [
                    name,
                    str(p["ef"]),
                    fmt(p["recall"], ".4f"),
                    fmt(p["qps"]),
                    fmt(p["batch_recall"], ".4f"),
                    fmt(p["batch_qps"]),
                ]
            )
            if "core" in p:
                c = p["core"]
                rows.append(
                    [
                        f"{name} (_core)",
                        str(p["ef"]),
                        fmt(c["recall"], ".4f"),
                        fmt(c["qps"]),
                        fmt(c["batch_recall"], ".4f"),
                        fmt(c["batch_qps"]),
                    ]
                )
    table(
        "Unfiltered sweep: recall@10 vs QPS (1/call = one query per call, batch = all "
        "queries in one call)",
        ["engine", "ef", "recall 1/call", "QPS 1/call", "recall batch", "QPS batch"],
        rows,
    )

    rows = []
    for name, r in results.items():
        p = r["chosen"]
        rows.append(
            [
                name,
                str(p["ef"]),
                fmt(p["recall"], ".4f"),
                fmt(p["qps"]),
                fmt(1e6 / p["qps"], ".0f"),
                fmt(p["batch_qps"]),
            ]
        )
        if "core" in p:
            c = p["core"]
            rows.append(
                [
                    f"{name} (_core)",
                    str(p["ef"]),
                    fmt(c["recall"], ".4f"),
                    fmt(c["qps"]),
                    fmt(1e6 / c["qps"], ".0f"),
                    fmt(c["batch_qps"]),
                ]
            )
    table(
        "Unfiltered at each engine's smallest ef with recall@10 >= 0.95 (median of 3)",
        ["engine", "ef", "recall", "QPS 1/call", "us/call", "QPS batch"],
        rows,
    )
    fs = results.get("ferrostore", {}).get("chosen", {})
    if "count_call_us" in fs:
        print(
            f"\nferrostore probes: collection.query with Chroma's default include "
            f"(documents, metadatas, distances): {fs['default_include_qps']:,.0f} QPS; "
            f"_core.count() (refresh + lock, no search): {fs['count_call_us']:.1f} us/call"
        )

    # Same-ef per-call latency, to split ferrostore's time from the graph search itself.
    by_ef: dict[int, dict[str, float]] = {}
    for name, r in results.items():
        for p in r["sweep"]:
            by_ef.setdefault(p["ef"], {})[name] = 1e6 / p["qps"]
            if "core" in p:
                by_ef[p["ef"]][f"{name} (_core)"] = 1e6 / p["core"]["qps"]
    cols = [
        c
        for c in ("ferrostore", "ferrostore (_core)", "usearch", "hnswlib", "faiss-hnsw", "chroma")
        if any(c in v for v in by_ef.values())
    ]
    rows = [
        [str(ef), *(fmt(v.get(c), ".0f") for c in cols)]
        for ef, v in sorted(by_ef.items())
        if len(v) > 1
    ]
    if rows:
        table("Microseconds per call, one query per call, at equal ef", ["ef", *cols], rows)

    rows = []
    names = [f["name"] for f in info["filters"]]
    for f in info["filters"]:
        for name, r in results.items():
            p = r["filtered"].get(f["name"])
            if p is None:
                continue
            tried = " ".join(f"{ef}:{rec:.2f}" for ef, rec, _ in p["tried"])
            if p.get("failures"):
                tried += f" ({p['failures']} calls raised)"
            rows.append(
                [
                    f"{f['name']} ({f['selectivity'] * 100:.2f}%)",
                    name,
                    str(p["ef"]),
                    fmt(p["recall"], ".4f"),
                    fmt(p["qps"], ",.1f"),
                    str(p["n_queries"]),
                    fmt(p.get("batch_qps"), ",.0f"),
                    fmt(p.get("batch_recall"), ".4f"),
                    tried,
                ]
            )
            if "core" in p:
                c = p["core"]
                rows.append(
                    [
                        "",
                        f"{name} (_core)",
                        str(p["ef"]),
                        fmt(c["recall"], ".4f"),
                        fmt(c["qps"], ",.1f"),
                        str(c["n_queries"]),
                        "-",
                        "-",
                        "",
                    ]
                )
    if rows:
        table(
            "Filtered (one query per call; ef doubled from the unfiltered point until "
            "recall >= 0.95)",
            [
                "filter",
                "engine",
                "ef",
                "recall",
                "QPS 1/call",
                "queries",
                "QPS batch",
                "recall batch",
                "ef:recall tried",
            ],
            rows,
        )
    if "usearch" in results:
        print(
            "\nusearch: its Python package has no filtered (predicate) search: no filtered numbers."
        )

    print("\n## Targets (ferrostore measured through collection.query)\n")
    verdicts = []
    fr = results.get("ferrostore")
    if fr is None:
        print("- ferrostore not measured")
        return verdicts

    def chosen(name: str, key: str) -> float | None:
        r = results.get(name)
        if r is None or r["chosen"]["recall"] < TARGET_RECALL:
            return None
        return r["chosen"][key]

    ours_ok = fr["chosen"]["recall"] >= TARGET_RECALL
    print(
        f"- ferrostore unfiltered recall@10 {fr['chosen']['recall']:.4f} at ef "
        f"{fr['chosen']['ef']} ({'>=' if ours_ok else '<'} 0.95)"
    )
    verdicts.append(
        verdict(
            "unfiltered 1/call >= 5x Chroma",
            chosen("ferrostore", "qps"),
            chosen("chroma", "qps"),
            5.0,
            unit=" QPS",
        )
    )
    verdicts.append(
        verdict(
            "unfiltered 1/call >= 0.8x hnswlib",
            chosen("ferrostore", "qps"),
            chosen("hnswlib", "qps"),
            0.8,
            unit=" QPS",
        )
    )
    peers = [(n, chosen(n, "batch_qps")) for n in results if n != "ferrostore"]
    peers = [(n, q) for n, q in peers if q is not None]
    if peers:
        best_name, best = max(peers, key=lambda x: x[1])
        verdicts.append(
            verdict(
                f"batched >= best peer's batched ({best_name})",
                chosen("ferrostore", "batch_qps"),
                best,
                1.0,
                unit=" QPS",
            )
        )
    if "hnswlib" in results:
        verdicts.append(
            verdict(
                "build time <= hnswlib's",
                fr["build_s"],
                results["hnswlib"]["build_s"],
                1.0,
                higher_is_better=False,
                unit=" s",
            )
        )
    if "chroma" in results:
        verdicts.append(
            verdict(
                "add throughput >= 5x Chroma's",
                fr["add_per_s"],
                results["chroma"]["add_per_s"],
                5.0,
                unit=" adds/s",
            )
        )
    if "hnswlib" in results:
        verdicts.append(
            verdict(
                "memory per vector <= 1.3x hnswlib's (RSS)",
                fr["bytes_per_vector"],
                results["hnswlib"]["bytes_per_vector"],
                1.3,
                higher_is_better=False,
                unit=" B",
            )
        )
    for name in names:
        p = fr["filtered"].get(name)
        if p is None:
            continue
        met = p["recall"] >= TARGET_RECALL
        print(
            f"- {name}: ferrostore recall@10 {p['recall']:.4f} (target >= 0.95) -> "
            f"{'MET' if met else 'NOT MET'}"
        )
        verdicts.append({"target": f"{name} recall", "met": met})
        ch = results.get("chroma", {}).get("filtered", {}).get(name)
        verdicts.append(
            verdict(
                f"{name}: QPS >= 50x Chroma",
                p["qps"],
                None if ch is None else ch["qps"],
                50.0,
                unit=" QPS",
            )
        )
        cands = []
        for peer in ("hnswlib", "faiss-flat"):
            q = results.get(peer, {}).get("filtered", {}).get(name)
            if q is not None and q["recall"] >= TARGET_RECALL:
                cands.append((peer, q["qps"]))
        if cands:
            peer, q = max(cands, key=lambda x: x[1])
            verdicts.append(
                verdict(
                    f"{name}: QPS >= better of hnswlib-filter / FAISS exact subset ({peer})",
                    p["qps"],
                    q,
                    1.0,
                    unit=" QPS",
                )
            )
        else:
            print(f"- {name}: no hnswlib/FAISS-exact point at recall >= 0.95 to compare")
    met = sum(1 for v in verdicts if v["met"])
    print(f"\n{met} of {sum(1 for v in verdicts if v['met'] is not None)} targets met")
    return verdicts


# --------------------------------------------------------------------------- main


def chroma_python(arg: str | None) -> str | None:
    if arg:
        return arg
    venv = Path("/tmp/chromaenv/bin/python")
    if venv.exists():
        return str(venv)
    try:
        import chromadb  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--chroma-python", default=None)
    parser.add_argument("--chroma-filtered-queries", type=int, default=200)
    parser.add_argument(
        "--budget",
        type=float,
        default=4.0,
        help="seconds per unfiltered sweep point (at least 200 queries)",
    )
    parser.add_argument(
        "--filtered-budget",
        type=float,
        default=2.0,
        help="seconds per filtered point (at least 100 queries; x3 for Chroma)",
    )
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic: vectors")
    parser.add_argument("--dim", type=int, default=128, help="synthetic: dimension")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--opts", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker(args.worker, args.data_dir, args.out, json.loads(args.opts))
        return

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            parser.error(f"unknown engine {e!r}: expected some of {', '.join(ENGINES)}")
    work = Path(tempfile.mkdtemp(prefix="vbench-"))
    try:
        t0 = time.perf_counter()
        data_dir = work / "data"
        if args.synthetic:
            info = prepare_synthetic(data_dir, args.n, args.dim, args.queries, args.seed)
        else:
            info = prepare_minilm(args.data, data_dir, args.queries)
        print(
            f"prepared {info['name']} in {time.perf_counter() - t0:.1f}s; filters: "
            + ", ".join(f"{f['name']}={f['n_match']}" for f in info["filters"]),
            file=sys.stderr,
            flush=True,
        )
        opts = {
            "budget_s": args.budget,
            "filtered_budget_s": args.filtered_budget,
            "chroma_filtered_queries": args.chroma_filtered_queries,
        }
        results: dict[str, dict[str, Any]] = {}
        for e in engines:
            python = sys.executable
            if e == "chroma":
                found = chroma_python(args.chroma_python)
                if found is None:
                    print(
                        "chroma: chromadb not installed (no --chroma-python): skipped",
                        file=sys.stderr,
                    )
                    continue
                python = found
            out = work / f"{e}.json"
            env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
            t1 = time.perf_counter()
            proc = subprocess.run(
                [
                    python,
                    str(HERE),
                    "--worker",
                    e,
                    "--data-dir",
                    str(data_dir),
                    "--out",
                    str(out),
                    "--opts",
                    json.dumps(opts),
                ],
                env=env,
                check=False,
            )
            if proc.returncode != 0 or not out.exists():
                print(f"{e}: worker failed (exit {proc.returncode})", file=sys.stderr)
                continue
            results[e] = json.loads(out.read_text())
            print(f"{e}: done in {time.perf_counter() - t1:.0f}s", file=sys.stderr, flush=True)
        verdicts = report(info, results)
        print(f"\n(total {time.perf_counter() - t0:.0f}s)")
        if args.json_out:
            args.json_out.write_text(
                json.dumps({"info": info, "results": results, "verdicts": verdicts}, indent=1)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
