"""Unfiltered one-query-per-call rate of ferrostore against hnswlib, interleaved.

Usage::

    python benches/vectors_interleaved.py [--data ../shared/datasets/minilm-debian]
        [--ef-ferrostore 32] [--ef-hnswlib 32] [--rounds 15] [--block 200]

``vectors_side_by_side.py`` runs each engine in its own process, one after the other; on a
shared machine a neighbour's load can land on one engine's turn only (runs this session put
ferrostore's ratio to hnswlib anywhere from 0.3 to 1.0). This script builds both in one
process on the same data (M=16, ef_construction=128, cosine; ferrostore through
``PersistentClient`` with metadata and documents, queried with ``collection.query``), then
alternates blocks of queries between them for several rounds, so both see the same machine.
It prints each engine's recall@10 and, per round, both rates and their ratio; then the median
ratio. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vectors_side_by_side import (
    ADD_BATCH,
    DEFAULT_DATA,
    EF_CONSTRUCTION,
    META_FIELDS,
    K,
    M,
    recall_at_k,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--ef-ferrostore", type=int, default=32)
    parser.add_argument("--ef-hnswlib", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=200, help="queries per engine per round")
    args = parser.parse_args()

    import hnswlib

    import ferrostore.vectors as fsv

    base = np.load(args.data / "base_f16.npy").astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = np.load(args.data / "queries.npy").astype(np.float32)
    gt = np.load(args.data / "gt_ids.npy")
    lines = (args.data / "base_meta.jsonl").read_text().splitlines()
    meta = [json.loads(line) for line in lines]
    metadatas = [{k: m[k] for k in META_FIELDS} for m in meta]
    documents = [m["text"] for m in meta]
    ids = [str(i) for i in range(len(base))]

    tmp = Path(tempfile.mkdtemp(prefix="vinterleaved-"))
    try:
        collection = fsv.PersistentClient(tmp).create_collection(
            "bench",
            metadata={
                "hnsw:space": "cosine",
                "hnsw:M": M,
                "hnsw:construction_ef": EF_CONSTRUCTION,
                "hnsw:search_ef": args.ef_ferrostore,
            },
            embedding_function=None,
        )
        t0 = time.perf_counter()
        for start in range(0, len(base), ADD_BATCH):
            stop = start + ADD_BATCH
            collection.add(
                ids=ids[start:stop],
                embeddings=base[start:stop],
                metadatas=metadatas[start:stop],
                documents=documents[start:stop],
            )
        ferrostore_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        graph = hnswlib.Index(space="cosine", dim=base.shape[1])
        graph.init_index(len(base), M=M, ef_construction=EF_CONSTRUCTION)
        graph.add_items(base, np.arange(len(base)))
        graph.set_ef(args.ef_hnswlib)
        hnswlib_build = time.perf_counter() - t0
        print(f"build: ferrostore {ferrostore_build:.1f} s, hnswlib {hnswlib_build:.1f} s")

        def ferrostore_ids(q: np.ndarray) -> list[int]:
            got = collection.query(query_embeddings=q[None], n_results=K, include=["distances"])
            return [int(x) for x in got["ids"][0]]

        def hnswlib_ids(q: np.ndarray) -> list[int]:
            return [int(x) for x in graph.knn_query(q, K)[0][0]]

        engines = {"ferrostore": ferrostore_ids, "hnswlib": hnswlib_ids}
        for name, search in engines.items():
            recall = recall_at_k([search(q) for q in queries], gt)
            print(f"{name}: recall@10 {recall:.4f}")

        ratios = []
        for r in range(args.rounds):
            block = queries[(r * args.block) % len(queries) :][: args.block]
            rates = {}
            for name, search in engines.items():
                t0 = time.perf_counter()
                for q in block:
                    search(q)
                rates[name] = len(block) / (time.perf_counter() - t0)
            ratio = rates["ferrostore"] / rates["hnswlib"]
            ratios.append(ratio)
            print(
                f"round {r + 1:2d}: ferrostore {rates['ferrostore']:8,.0f} q/s, "
                f"hnswlib {rates['hnswlib']:8,.0f} q/s, ratio {ratio:.2f}"
            )
        print(f"median ratio ferrostore / hnswlib: {statistics.median(ratios):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
