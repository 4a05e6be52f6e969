"""Stack plan: ``plan`` of a stack with 200 feature views and 50 collections (target <= 1 s).

Run: ``python benches/stack_bench.py [--views 200] [--collections 50] [--repeats 5]``.

Setup (not timed): a feature repo whose ``features.py`` declares one entity and ``--views``
feature views over one Parquet source (5 features each), and a ``ferrostore.yaml`` with
``--collections`` vector collections and a model. Timed, through the public API
(``ferrostore.stack.plan_stack``: parse the file, import the definitions, check each view
against its source, read the metadata database and the vector catalogue, diff):

- ``plan (empty state)``: nothing applied yet, everything to create;
- ``apply``: one apply of it all (once);
- ``plan (no changes)``: the second plan, everything in place;
- ``plan (10 changes)``: after editing 5 views and 5 collections in the file.

The median of ``--repeats`` runs is printed for each plan.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ferrostore.features.scaffold import synthetic_transactions
from ferrostore.stack import apply_stack, plan_stack

_HEAD = """\
from datetime import timedelta
from ferrostore.features import Entity, FeatureView, Field, FileSource
from ferrostore.features.types import Float32, Int64

customer = Entity(name="customer_id", join_keys=["customer_id"])
source = FileSource(path="data/tx.parquet", timestamp_field="event_timestamp",
                    created_timestamp_column="created_timestamp")
"""
_VIEW = """\
view_{i} = FeatureView(
    name="view_{i}", entities=[customer], ttl=timedelta(days={ttl}), source=source, online=True,
    schema=[Field(name="total_transactions_30d", dtype=Int64),
            Field(name="avg_transaction_amount_30d", dtype=Float32),
            Field(name="max_transaction_amount_30d", dtype=Float32),
            Field(name="transaction_count_7d", dtype=Int64),
            Field(name="unique_merchants_30d", dtype=Int64)],
)
"""


def write_stack(root: Path, views: int, collections: int, changed: int = 0) -> Path:
    """Write the feature repo and ``ferrostore.yaml``; the first ``changed`` items differ."""
    import pyarrow.parquet as pq

    repo = root / "feature_repo"
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text("project: bench\n")
    if not (repo / "data" / "tx.parquet").exists():
        pq.write_table(synthetic_transactions(10), repo / "data" / "tx.parquet")
    body = "".join(_VIEW.format(i=i, ttl=91 if i < changed else 90) for i in range(views))
    (repo / "features.py").write_text(_HEAD + body)
    lines = [
        "name: bench",
        "features: {repo: feature_repo, definitions: [features.py]}",
        "collections:",
    ]
    for i in range(collections):
        desc = "changed" if i < changed else "docs"
        lines.append(
            f"  - {{name: coll_{i:03d}, dimension: 384, space: cosine, "
            f"metadata: {{description: {desc}}}}}"
        )
    lines += ["models:", "  - {name: fraud-detector, description: bench, tags: {team: a}}"]
    path = root / "ferrostore.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    """Build the stack, time plan / apply / plan / plan-with-changes, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--collections", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write_stack(root, args.views, args.collections)
        rows = []
        secs, plan = timed(lambda: plan_stack(path), args.repeats)
        rows.append(("plan (empty state)", secs, len(plan.changes)))
        start = time.perf_counter()
        result = apply_stack(path)
        rows.append(("apply", time.perf_counter() - start, len(result.applied)))
        secs, plan = timed(lambda: plan_stack(path), args.repeats)
        assert not plan.has_changes, plan.render()
        rows.append(("plan (no changes)", secs, len(plan.changes)))
        write_stack(root, args.views, args.collections, changed=5)
        secs, plan = timed(lambda: plan_stack(path), args.repeats)
        rows.append(("plan (10 changes)", secs, len(plan.changes)))
        print(f"stack: {args.views} feature views, {args.collections} collections, 1 model")
        print(f"{'operation':<22}{'seconds':>10}{'changes':>10}   target")
        for name, secs, n in rows:
            target = "" if name == "apply" else ("<= 1 s " + ("ok" if secs <= 1 else "MISSED"))
            print(f"{name:<22}{secs:>10.3f}{n:>10}   {target}")


if __name__ == "__main__":
    main()
