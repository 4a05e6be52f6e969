"""Worker functions of the online store's multi-process tests (tests/test_online_store.py).

They run in "spawn" children, so they live in an importable module, take picklable
arguments and report through a multiprocessing queue: ``(kind, payload)`` tuples, where an
exception in a worker is reported as ``("error", traceback text)`` instead of dying silently.
"""

from __future__ import annotations

import datetime as dt
import time
import traceback
from typing import Any

import numpy as np
import pyarrow as pa

from ferrostore.features import OnlineStore

#: Event time of batch 0; batch ``b`` is written at ``BASE + b`` seconds.
BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TIMEOUT_S = 60


def batch_table(keys: np.ndarray, value: int, second: int) -> pa.Table:
    """Rows setting ``x`` of every key in ``keys`` to ``value`` at ``BASE + second``."""
    micros = int((BASE + dt.timedelta(seconds=second)).timestamp()) * 1_000_000
    return pa.table(
        {
            "k": pa.array(keys, pa.int64()),
            "x": pa.array(np.full(len(keys), value), pa.int64()),
            "event_timestamp": pa.array(np.full(len(keys), micros), pa.timestamp("us", tz="UTC")),
        }
    )


def summarize(values: list[Any]) -> int | tuple[Any, ...]:
    """The batch number of one read: an int if every entity agrees, else the sorted set."""
    distinct = set(values)
    if len(distinct) == 1 and None not in distinct:
        return int(next(iter(distinct)))
    return tuple(sorted(distinct, key=repr))


def consistency_writer(
    path: str, view: str, n_entities: int, n_batches: int, start: Any, results: Any
) -> None:
    """Write batches 1..n_batches, each setting every entity's ``x`` to the batch number."""
    try:
        store = OnlineStore(path)
        keys = np.arange(n_entities)
        tables = [batch_table(keys, b, b) for b in range(1, n_batches + 1)]
        if not start.wait(TIMEOUT_S):
            raise TimeoutError("start event never set")
        for b, table in enumerate(tables, start=1):
            summary = store.write(view, table)
            if summary.written != n_entities:
                raise AssertionError(f"batch {b} wrote {summary}")
            time.sleep(0.01)  # let readers see the intermediate states
        results.put(("writer", n_batches))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def consistency_reader(
    path: str,
    view: str,
    n_entities: int,
    ready: Any,
    stop: Any,
    results: Any,
    in_memory: bool = False,
) -> None:
    """Read every entity repeatedly until ``stop`` is set; report each read's batch number.

    Consecutive equal observations are collapsed into one ``(observation, count)`` pair.
    With ``in_memory``, the view is loaded into memory after every read (so reads between
    two writes use the copy) and never in the background; otherwise never.
    """
    try:
        store = OnlineStore(path, cache_bytes=64 << 20 if in_memory else 0)
        entities = pa.table({"k": pa.array(np.arange(n_entities), pa.int64())})
        seen: list[list[Any]] = []
        ready.set()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            last = stop.is_set()
            values = store.read(entities, [view]).values.column(f"{view}:x").to_pylist()
            observation = summarize(values)
            if seen and seen[-1][0] == observation:
                seen[-1][1] += 1
            else:
                seen.append([observation, 1])
            if last:
                break
            if in_memory:
                store.preload([view])
        results.put(("reader", [tuple(s) for s in seen]))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def killed_writer(
    path: str, view: str, committed: int, rows_per_batch: int, big_rows: int, results: Any
) -> None:
    """Commit ``committed`` small batches, then start one huge batch (to be SIGKILLed).

    Batch ``i`` sets keys ``[i * rows_per_batch, (i + 1) * rows_per_batch)`` to ``i + 1``;
    the huge batch sets keys ``[0, big_rows)`` to ``-1`` with a newer timestamp.
    """
    try:
        store = OnlineStore(path)
        for i in range(committed):
            keys = np.arange(i * rows_per_batch, (i + 1) * rows_per_batch)
            store.write(view, batch_table(keys, i + 1, i + 1))
            results.put(("committed", i))
        big = batch_table(np.arange(big_rows), -1, 3600)
        results.put(("starting", big_rows))
        summary = store.write(view, big)
        results.put(("finished", summary.written))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def probe_store(path: str, view: str, results: Any) -> None:
    """Open the store (this takes LMDB's writer lock), count, write one row, count again."""
    try:
        store = OnlineStore(path)
        before = store.count(view)
        store.write(view, batch_table(np.array([-7]), 7, 7200))
        results.put(("probe", (before, store.count(view), store.read_one(view, [-7])["x"])))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def write_batch(path: str, view: str, n_entities: int, value: int, results: Any) -> None:
    """Set ``x`` of entities ``0..n_entities`` to ``value`` at ``BASE + value`` seconds."""
    try:
        store = OnlineStore(path)
        written = store.write(view, batch_table(np.arange(n_entities), value, value)).written
        results.put(("written", written))
    except BaseException:
        results.put(("error", traceback.format_exc()))
