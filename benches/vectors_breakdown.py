"""Where a ferrostore vector query spends its time, on the minilm-debian set.

Usage::

    python benches/vectors_breakdown.py [--data ../shared/datasets/minilm-debian] [--ef 24]

Companion of ``vectors_side_by_side.py``: that one compares engines, this one splits
ferrostore's own time. It builds one collection with the engine directly
(``ferrostore._core.VectorCollection``, no Python layer; same batches of 5,000 with metadata
and documents), checkpoints it, and then measures, one query per call unless said:

* ``_core.query`` at that ef (binding + engine + graph search), single and batched, and
  how much of it is Python's share (the same calls with the collection's Python layer);
* fixed per-call costs: ``_core.count()`` (the per-call refresh and lock, no search), a
  query whose filter matches one record (refresh, filter parse and select, one exact
  score, result conversion);
* exact scoring of a filtered set: ``_core.query`` with a ~10% and a ~1% filter, against
  numpy (``subset @ q`` + ``argpartition``) and FAISS ``IndexFlatIP`` (one thread) over the
  same rows;
* the Python layer's per-call helpers of ``Collection.query`` timed alone;
* memory: RSS growth of the build (anonymous / file-backed) and the files' sizes.

Prints microseconds per call. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vectors_side_by_side import DEFAULT_DATA, recall_at_k, rss

K = 10


def per_call_us(fn: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def show(label: str, fn: Callable[[int], Any], n: int) -> None:
    print(f"  {label}: {per_call_us(fn, n):,.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--ef", type=int, default=24)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()

    import faiss

    from ferrostore._core import VectorCollection
    from ferrostore.vectors import _validation
    from ferrostore.vectors.collection import _filters, _query_result

    data = args.data
    base = np.load(data / "base_f16.npy").astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = np.load(data / "queries.npy")[: args.queries]
    gt = np.load(data / "gt_ids.npy")[: args.queries]
    gt_f = np.load(data / "gt_filtered.npz")
    meta = [json.loads(line) for line in (data / "base_meta.jsonl").read_text().splitlines()]
    keep = ("package", "section", "priority", "installed_size", "arch", "bucket")
    metadatas = [{k: m[k] for k in keep} for m in meta]
    documents = [m["text"] for m in meta]
    ids = [str(i) for i in range(len(base))]
    nq = len(queries)
    tmp = Path(tempfile.mkdtemp(prefix="vbreakdown-"))
    try:
        gc.collect()
        before = rss()
        col = VectorCollection(
            tmp / "c",
            dim=base.shape[1],
            space="cosine",
            m=16,
            ef_construction=128,
            ef_search=args.ef,
        )
        t0 = time.perf_counter()
        for s in range(0, len(base), 5000):
            col.write(
                ids[s : s + 5000],
                base[s : s + 5000],
                documents[s : s + 5000],
                json.dumps(metadatas[s : s + 5000]),
                mode="add",
            )
        build = time.perf_counter() - t0
        gc.collect()
        after = rss()
        n = len(base)
        print(
            f"_core build (write x10 batches of 5,000, metadata + documents): {build:.1f}s "
            f"= {n / build:,.0f} adds/s"
        )
        print(
            f"RSS growth per vector: total {(after['VmRSS'] - before['VmRSS']) / n:,.0f} B, "
            f"anon {(after['RssAnon'] - before['RssAnon']) / n:,.0f} B, "
            f"file-backed {(after['RssFile'] - before['RssFile']) / n:,.0f} B "
            f"(raw f32 vector: {base.shape[1] * 4} B)"
        )
        t0 = time.perf_counter()
        col.checkpoint()
        print(f"checkpoint: {time.perf_counter() - t0:.1f}s")
        for f in sorted((tmp / "c").rglob("*")):
            if f.is_file():
                print(
                    f"  file {f.relative_to(tmp)}: {f.stat().st_size:,} bytes, "
                    f"{f.stat().st_size / n:,.0f} B/vector"
                )

        print(f"\nunfiltered, ef={args.ef}, {nq} queries")
        col.set_search_ef(args.ef)
        t0 = time.perf_counter()
        out = [col.query(q[None], K, None, None, False, False, False) for q in queries]
        core_single = (time.perf_counter() - t0) / nq * 1e6
        rec_c = recall_at_k([[int(x) for x in o[0][0]] for o in out], gt)
        t0 = time.perf_counter()
        col.query(queries, K, None, None, False, False, False)
        core_batch = (time.perf_counter() - t0) / nq * 1e6
        print(
            f"  _core.query: {core_single:,.1f} us/call (recall {rec_c:.4f}); batched "
            f"{core_batch:,.1f} us/query"
        )

        print("\nfixed per-call costs")
        show("_core.count() (refresh + lock)", lambda i: col.count(), 3000)
        one = {"package": meta[0]["package"]}
        n_one = sum(1 for m in meta if m["package"] == meta[0]["package"])
        show(
            f"_core.query with a filter matching {n_one} record(s)",
            lambda i: col.query(queries[i % nq][None], K, one, None, False, False, False),
            2000,
        )
        q1 = queries[0][None]
        col.set_search_ef(1)
        show(
            "_core.query ef=1 k=1 (graph barely searched)",
            lambda i: col.query(q1, 1, None, None, False, False, False),
            2000,
        )
        col.set_search_ef(args.ef)
        filters = {f["name"]: f for f in json.loads((data / "filters.json").read_text())["filters"]}
        for name, f in filters.items():
            w = f["where"]
            show(
                f"_core.get(where={name}, limit=1) (filter evaluation + get in insertion order)",
                lambda i, w=w: col.get(None, w, None, 1, 0, False),
                300,
            )

        print("\nexact scoring of a filtered set (one query per call)")
        faiss.omp_set_num_threads(1)
        bucket = np.array([m["bucket"] for m in meta])
        section = np.array([m["section"] for m in meta], dtype=object)
        masks = {"rand_10pct": bucket < 10, "rand_1pct": bucket < 1, "cat_10pct": section == "libs"}
        for name, mask in masks.items():
            rows = np.flatnonzero(mask)
            w = filters[name]["where"]
            m = min(nq, 300)
            t0 = time.perf_counter()
            out = [col.query(queries[i][None], K, w, None, False, False, False) for i in range(m)]
            core = (time.perf_counter() - t0) / m * 1e6
            rec = recall_at_k([[int(x) for x in o[0][0]] for o in out], gt_f[name][:m])
            sub = np.ascontiguousarray(base[rows])

            def np_exact(i: int, sub: np.ndarray = sub, rows: np.ndarray = rows) -> Any:
                s = sub @ queries[i]
                top = np.argpartition(-s, K)[:K]
                return rows[top[np.argsort(-s[top])]]

            idx = faiss.IndexFlatIP(base.shape[1])
            idx.add(sub)
            np_us = per_call_us(np_exact, m)
            fa_us = per_call_us(lambda i, idx=idx: idx.search(queries[i][None], K), m)
            print(
                f"  {name} ({len(rows)} rows): _core.query {core:,.0f} us (recall {rec:.3f}) "
                f"= {core * 1e3 / len(rows):.0f} ns/row; numpy {np_us:,.0f} us; "
                f"FAISS flat 1 thread {fa_us:,.0f} us = {fa_us * 1e3 / len(rows):.0f} ns/row"
            )

        print("\nPython layer of Collection.query, per call (helpers timed alone)")
        q = queries[0][None]
        show(
            "normalize_embeddings(1x384 array)",
            lambda i: _validation.normalize_embeddings(q, "q", check_finite=False),
            5000,
        )
        show(
            "check_n_results + check_include",
            lambda i: (
                _validation.check_n_results(10),
                _validation.check_include(["distances"], allow_distances=True),
            ),
            5000,
        )
        where = {"$and": [{"bucket": {"$lt": 1}}, {"section": "libs"}]}
        show("_filters(where with $and)", lambda i: _filters(where, None), 5000)
        show("is_deleted() (deleted-collection check)", lambda i: col.is_deleted(), 5000)
        raw = col.query(q, K, None, None, False, True, True)
        show("_query_result(include=distances)", lambda i: _query_result(*raw, ["distances"]), 5000)
        show(
            "_query_result(Chroma's default include)",
            lambda i: _query_result(*raw, ["metadatas", "documents", "distances"]),
            5000,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
