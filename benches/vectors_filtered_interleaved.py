"""Filtered one-query-per-call rates of ferrostore, hnswlib and FAISS exact, interleaved.

Usage::

    python benches/vectors_filtered_interleaved.py [--data ../shared/datasets/minilm-debian]
        [--ef-ferrostore 32] [--ef-hnswlib 32] [--rounds 8] [--block-seconds 0.3]
        [--filters rand_10pct,cat_10pct]

``vectors_side_by_side.py`` measures each engine in its own process, one after the other, so
on this shared machine a filter's ratio swings with whichever engine met a slow minute. This
script builds the three engines of the filtered target in one process on the same data
(ferrostore through ``collection.query`` with a ``where``; hnswlib with a Python ``filter``
callable; FAISS ``IndexFlatIP`` over the matching rows, built before timing), using the side
by side's engine classes and filters, then takes turns: per filter and round, each engine
runs queries for ``--block-seconds``. It prints each engine's recall@10 and per filter the
median rates and the median of the per-round ratios of ferrostore to each peer and to the
better of them. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vectors_side_by_side import (
    DEFAULT_DATA,
    META_FIELDS,
    default_ids,
    make_engine,
    prepare_minilm,
    recall_at_k,
)

PEERS = ("hnswlib", "faiss-flat")


def rate(
    search: Callable[[np.ndarray], Any], queries: np.ndarray, start: int, seconds: float
) -> float:
    """Queries per second over consecutive queries from ``start`` for about ``seconds``."""
    done = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        search(queries[(start + done) % len(queries)])
        done += 1
        if time.perf_counter() > deadline:
            break
    return done / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--ef-ferrostore", type=int, default=32)
    parser.add_argument("--ef-hnswlib", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--block-seconds", type=float, default=0.3)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--filters", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vfiltered-"))
    try:
        info = prepare_minilm(args.data, tmp / "data", 1000)
        base = np.load(tmp / "data" / "base.npy")
        queries = np.load(tmp / "data" / "queries.npy")
        masks = dict(np.load(tmp / "data" / "masks.npz"))
        gts = dict(np.load(tmp / "data" / "gt_filtered.npz"))
        lines = (args.data / "base_meta.jsonl").read_text().splitlines()
        meta = [json.loads(line) for line in lines]
        metadatas = [{k: m[k] for k in META_FIELDS} for m in meta]
        documents = [m["text"] for m in meta]

        engines = {name: make_engine(name, base.shape[1]) for name in ("ferrostore", *PEERS)}
        for name, eng in engines.items():
            t0 = time.perf_counter()
            eng.build(base, metadatas, documents)
            print(f"{name}: built in {time.perf_counter() - t0:.1f} s", flush=True)
        engines["ferrostore"].set_ef(args.ef_ferrostore)
        engines["hnswlib"].set_ef(args.ef_hnswlib)

        wanted = {n for n in args.filters.split(",") if n}
        for f in info["filters"]:
            name = f["name"]
            if wanted and name not in wanted:
                continue
            searches = {}
            for engine_name, eng in engines.items():
                eng.prepare_filter(name, masks[name], base, f["where"])
                to_ids = getattr(eng, "ids", default_ids)
                searches[engine_name] = (
                    lambda q, eng=eng, name=name: eng.filtered_single(q, name),
                    to_ids,
                )
            n = args.recall_queries
            recalls = {
                engine_name: recall_at_k([to_ids(search(q)) for q in queries[:n]], gts[name][:n])
                for engine_name, (search, to_ids) in searches.items()
            }
            rates: dict[str, list[float]] = {engine_name: [] for engine_name in searches}
            for r in range(args.rounds):
                for engine_name, (search, _) in searches.items():
                    rates[engine_name].append(rate(search, queries, r * 97, args.block_seconds))
            ours = rates["ferrostore"]
            ratio = {
                peer: statistics.median(a / b for a, b in zip(ours, rates[peer], strict=True))
                for peer in PEERS
            }
            best = [max(rates[p][i] for p in PEERS) for i in range(args.rounds)]
            ratio_best = [a / b for a, b in zip(ours, best, strict=True)]
            print(
                f"{name} ({f['selectivity']:.2%}): "
                + ", ".join(
                    f"{e} {statistics.median(v):,.0f} q/s (recall {recalls[e]:.3f})"
                    for e, v in rates.items()
                )
                + "; ferrostore / "
                + ", ".join(f"{p} {ratio[p]:.2f}" for p in PEERS)
                + f"; / better peer {statistics.median(ratio_best):.2f}"
                + f" (rounds {min(ratio_best):.2f}-{max(ratio_best):.2f})",
                flush=True,
            )
        for eng in engines.values():
            if hasattr(eng, "close"):
                eng.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
