"""Lineage queries: ``get_lineage_subgraph`` on a graph of 100k artifacts and executions.

Run: ``python benches/lineage_bench.py [--nodes 100000] [--hops 3] [--postgres URL]``.

The graph is a layered pipeline DAG (each execution reads two of the 200 artifacts before it
and writes one new one; half the nodes are artifacts, half executions), bulk-inserted into
the lineage tables (setup, not timed). Each timed call goes through the public API:
``MetadataStore.get_lineage_subgraph(start, hops, direction)`` from random artifacts, the
median of the repeats printed per direction. Side by side, the same walk done the naive way
(one query per hop from Python), to show what the recursive query saves; target: <= 20 ms
for 3 hops.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ferrostore.lineage import ArtifactType, Direction, ExecutionType, MetadataStore
from ferrostore.metadata import tables as t


def build(store: MetadataStore, nodes: int, seed: int = 1) -> list[int]:
    """Bulk-insert a layered DAG of ``nodes`` artifacts + executions; return artifact ids."""
    a_type = store.put_artifact_type(ArtifactType("Dataset", {"rows": "INT"}))
    e_type = store.put_execution_type(ExecutionType("Step"))
    rng = random.Random(seed)
    n_exec = nodes // 2
    n_art = nodes - n_exec
    now = 0
    artifacts = [
        {"id": i, "type_id": a_type, "name": f"a{i}", "uri": f"s3://b/{i}", "state": "LIVE",
         "create_time": now, "last_update_time": now}
        for i in range(1, n_art + 1)
    ]  # fmt: skip
    executions = [
        {"id": i, "type_id": e_type, "name": f"e{i}", "state": "COMPLETE",
         "create_time": now, "last_update_time": now}
        for i in range(1, n_exec + 1)
    ]  # fmt: skip
    events = []
    for e in range(1, n_exec + 1):
        # execution e reads two of the 200 artifacts before it and writes artifact e
        for a in rng.sample(range(max(1, e - 200), e), min(2, e - 1)):
            events.append((a, e, "INPUT"))
        if e <= n_art:
            events.append((e, e, "OUTPUT"))
    rows = [
        {"artifact_id": a, "execution_id": e, "type": kind, "path": None,
         "src_node": 2 * a if kind == "INPUT" else 2 * e + 1,
         "dst_node": 2 * e + 1 if kind == "INPUT" else 2 * a,
         "milliseconds_since_epoch": now}
        for a, e, kind in dict.fromkeys(events)
    ]  # fmt: skip
    with store.db.transaction() as conn:
        for table, data in (
            (t.lineage_artifacts, artifacts),
            (t.lineage_executions, executions),
            (t.lineage_events, rows),
        ):
            for i in range(0, len(data), 20_000):
                conn.execute(sa.insert(table), data[i : i + 20_000])
        if conn.dialect.name == "postgresql":
            for table in ("lineage_artifacts", "lineage_executions"):
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    with store.db.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    print(f"graph: {n_art:,} artifacts, {n_exec:,} executions, {len(rows):,} events")
    return list(range(1, n_art + 1))


def naive(store: MetadataStore, start: int, hops: int, direction: Direction) -> int:
    """The walk done from Python, one query per hop (what the recursive query replaces)."""
    ev = t.lineage_events.c
    frontier, seen = {2 * start}, {2 * start}
    with store.db.transaction(readonly=True) as conn:
        for _ in range(hops):
            if not frontier:
                break
            nxt: set[int] = set()
            ids = sorted(frontier)
            if direction in (Direction.UPSTREAM, Direction.BOTH):
                nxt |= {
                    r[0] for r in conn.execute(sa.select(ev.src_node).where(ev.dst_node.in_(ids)))
                }
            if direction in (Direction.DOWNSTREAM, Direction.BOTH):
                nxt |= {
                    r[0] for r in conn.execute(sa.select(ev.dst_node).where(ev.src_node.in_(ids)))
                }
            frontier = nxt - seen
            seen |= frontier
    return len(seen)


def cte_ids(store: MetadataStore, start: int, hops: int, direction: Direction) -> int:
    """The recursive query alone (node ids only), to compare with :func:`naive` fairly."""
    from ferrostore.lineage.store import _walk_sql

    with store.db.transaction(readonly=True) as conn:
        rows = conn.execute(sa.text(_walk_sql(direction, 1)), {"s0": 2 * start, "max_hops": hops})
        return len(rows.all())


def median_ms(fn: Any, starts: list[int]) -> tuple[float, float]:
    """Return (median ms, mean nodes returned) of ``fn(start)`` over ``starts``."""
    fn(starts[0])
    times, sizes = [], []
    for s in starts:
        t0 = time.perf_counter()
        size = fn(s)
        times.append(time.perf_counter() - t0)
        sizes.append(size)
    return statistics.median(times) * 1e3, statistics.mean(sizes)


def run(url: str, nodes: int, hops: int, repeats: int) -> None:
    """Build the graph at ``url`` and print the timings."""
    with MetadataStore(url) as store:
        t0 = time.perf_counter()
        artifacts = build(store, nodes)
        print(f"setup {time.perf_counter() - t0:.1f} s on {store.db.dialect}")
        rng = random.Random(2)
        starts = rng.sample(artifacts[len(artifacts) // 10 :], repeats)
        for direction in Direction:
            ours, size = median_ms(
                lambda s, d=direction: len(  # type: ignore[misc]
                    store.get_lineage_subgraph(("artifact", s), hops, d).hops
                ),
                starts,
            )
            ids, _ = median_ms(lambda s, d=direction: cte_ids(store, s, hops, d), starts)
            theirs, _ = median_ms(lambda s, d=direction: naive(store, s, hops, d), starts)
            print(
                f"{hops} hops {direction.value:<10} get_lineage_subgraph {ours:6.2f} ms "
                f"({size:5.1f} nodes, with properties and events) | ids only: recursive query "
                f"{ids:5.2f} ms, naive per-hop walk {theirs:5.2f} ms ({theirs / ids:4.2f}x)"
            )


def main() -> None:
    """Parse arguments and run the benchmark on SQLite (and PostgreSQL if given)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--postgres", default=None, help="an empty PostgreSQL database URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(str(Path(tmp) / "lineage.db"), args.nodes, args.hops, args.repeats)
    if args.postgres:
        run(args.postgres, args.nodes, args.hops, args.repeats)


if __name__ == "__main__":
    main()
