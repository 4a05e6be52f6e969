"""Throughput of the default embedding function (all-MiniLM-L6-v2 in NumPy), in texts/s.

Run: ``python benches/embeddings_bench.py [--repeats 5] [--threads N]``.

Embeds calls of 1, 32 and 256 texts (short sentences of 8-25 word pieces, like documents and
queries of the lesson) and one call of 32 texts of 256 word pieces (the truncation limit), and
prints the median throughput of each. The model load is timed apart. Needs the embeddings
extra (``pip install 'ferrostore[embeddings]'``); there is no comparison with
sentence-transformers, which is not a dependency.

``--threads N`` sets ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` before
NumPy loads (on a shared, busy machine one BLAS thread can be several times faster than two).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

SUBJECTS = [
    "The housing assistance program",
    "Veterans with a service-connected disability",
    "A feature store",
    "The SNAP program",
    "Medicare",
    "Point-in-time correct joins",
]
PREDICATES = [
    "provides subsidies for low-income families in urban areas.",
    "are eligible for enhanced healthcare benefits and dental coverage.",
    "keeps training and serving features consistent across environments.",
    "helps qualifying households buy groceries every month.",
    "covers hospital stays and medical services for seniors over sixty-five.",
    "prevent data leakage when building training sets from event logs.",
]


def _texts(n: int, offset: int = 0) -> list[str]:
    return [
        f"{SUBJECTS[(i + offset) % len(SUBJECTS)]} {PREDICATES[(i * 5 + offset) % len(PREDICATES)]}"
        f" (case {i + offset})"
        for i in range(n)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per size (median)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads")
    args = parser.parse_args()
    if args.threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    import numpy as np

    from ferrostore.vectors import embeddings

    ef = embeddings.DefaultEmbeddingFunction()
    start = time.perf_counter()
    ef(["warm-up"])
    print(f"model load + first call: {time.perf_counter() - start:.2f} s")
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"numpy {np.__version__}, BLAS threads: {threads}, cpus: {os.cpu_count()}")

    tokenizer = embeddings._get_model().tokenizer
    long_text = " ".join(_texts(80))
    cases = [
        (f"batch of {n}", [_texts(n, offset=r) for r in range(args.repeats)]) for n in (1, 32, 256)
    ]
    cases.append(
        ("32 texts of 256 pieces", [[f"{r} {long_text}"] * 32 for r in range(args.repeats)])
    )

    print(f"{'call':<24} {'pieces/text':>11} {'median s':>9} {'texts/s':>9}")
    for label, calls in cases:
        pieces = statistics.mean(len(e.ids) for e in tokenizer.encode_batch(calls[0]))
        ef(calls[0])  # warm-up for this shape
        times = []
        for texts in calls:
            start = time.perf_counter()
            ef(texts)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"{label:<24} {pieces:>11.1f} {median:>9.4f} {len(calls[0]) / median:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
