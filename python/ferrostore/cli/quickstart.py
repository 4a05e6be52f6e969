"""``ferrostore quickstart``: the main job on the embedded defaults, step by step."""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ferrostore.errors import AlreadyExists
from ferrostore.features import FieldStatus, OnlineStore
from ferrostore.metadata import MetadataDB

__all__ = ["run_quickstart"]

VIEW = "customer_transactions"
FEATURES = {
    "total_transactions_30d": "int64",
    "avg_transaction_amount_30d": "float32",
    "max_transaction_amount_30d": "float32",
    "transaction_count_7d": "int64",
    "unique_merchants_30d": "int64",
}


def _customer_features(customers: int, now: dt.datetime) -> pa.Table:
    """Synthetic features shaped like the lesson's ``customer_transactions`` view."""
    rng = np.random.default_rng(7)
    total = rng.poisson(40, customers).astype(np.int64)
    avg = rng.gamma(2.0, 30.0, customers).astype(np.float32)
    age_seconds = rng.integers(0, 30 * 86_400, customers)
    return pa.table(
        {
            "customer_id": np.arange(1001, 1001 + customers, dtype=np.int64),
            "total_transactions_30d": total,
            "avg_transaction_amount_30d": avg,
            "max_transaction_amount_30d": (avg * rng.uniform(1.5, 4.0, customers)).astype(
                np.float32
            ),
            "transaction_count_7d": rng.binomial(total, 0.25).astype(np.int64),
            "unique_merchants_30d": np.minimum(total, rng.poisson(12, customers)).astype(np.int64),
            "event_timestamp": pa.array(
                [now - dt.timedelta(seconds=int(s)) for s in age_seconds],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def _percentile_us(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] * 1e6


def run_quickstart(folder: str | None = None, *, customers: int = 5000) -> Path:
    """Run the quickstart in ``folder`` (created; must not exist) and print each step.

    Args:
        folder: Where to put the demo repo; a new temporary folder when ``None``.
        customers: How many customers to generate.

    Returns:
        The folder used.

    Raises:
        AlreadyExists: ``folder`` exists already.
    """
    if folder is None:
        root = Path(tempfile.mkdtemp(prefix="ferrostore-quickstart-"))
    else:
        root = Path(folder)
        if root.exists():
            raise AlreadyExists(f"quickstart folder '{root}' exists: expected a new folder")
        root.mkdir(parents=True)
    print(f"ferrostore quickstart in {root}\n")

    with MetadataDB(root / "data" / "metadata.db") as db:
        print(f"1. metadata database ready: {db.url} (schema {db.current_revision()})")

    store = OnlineStore(root / "data" / "online")
    schema = store.register_view(
        VIEW, {"customer_id": "int64"}, FEATURES, ttl=dt.timedelta(days=90)
    )
    print(
        f"2. online store at {store.path}: view '{schema.name}' v{schema.version}, "
        f"{len(schema.features)} features, ttl {schema.ttl.days if schema.ttl else None} days"
    )

    now = dt.datetime.now(dt.UTC)
    table = _customer_features(customers, now)
    start = time.perf_counter()
    summary = store.write(VIEW, table)
    elapsed = time.perf_counter() - start
    print(
        f"3. wrote {summary.written:,} customers in one transaction in {elapsed * 1e3:.1f} ms "
        f"({summary.rows / elapsed:,.0f} rows/s)"
    )

    ids = [1001, 1002, 1003, 10**9]
    result = store.read({"customer_id": ids}, [VIEW])
    frame = pa.Table.from_batches([result.values]).to_pandas(types_mapper=pd.ArrowDtype)
    frame.columns = [c.split(":", 1)[1] for c in frame.columns]
    frame.insert(0, "customer_id", ids)
    frame["status"] = [s.name for s in result.status(f"{VIEW}:total_transactions_30d")]
    print("4. read back (customer 1000000000 does not exist):")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.2f}"))

    features = list(FEATURES)
    one: list[float] = []
    for i in range(2000):
        t0 = time.perf_counter()
        store.read_one(VIEW, [1001 + i % customers], features)
        one.append(time.perf_counter() - t0)
    keys = np.random.default_rng(1).integers(1001, 1001 + customers, 1000)
    many: list[float] = []
    for _ in range(50):
        t0 = time.perf_counter()
        batch = store.read(pa.record_batch({"customer_id": keys}), {VIEW: features})
        many.append(time.perf_counter() - t0)
    assert batch.status(f"{VIEW}:unique_merchants_30d")[0] == FieldStatus.PRESENT
    print(
        f"5. read latency: one customer p50 {_percentile_us(one, 50):.1f} µs, "
        f"p99 {_percentile_us(one, 99):.1f} µs; "
        f"1,000 customers p50 {_percentile_us(many, 50):.0f} µs"
    )
    step, training = _feature_store_steps(root, first_step=6)
    model_name, step = _registry_steps(root, training, first_step=step)
    from ferrostore.cli.quickstart_vectors import run_vectors_quickstart

    print()
    step = run_vectors_quickstart(root, step)
    _lineage_step(root, model_name, step)
    print(f"\ndone: the demo repo is in {root}")
    return root


def _feature_store_steps(root: Path, *, first_step: int) -> tuple[int, Any]:
    """The lesson's feature store flow: definitions, training set, materialize, online read.

    Returns the next step number and a labelled training set for the registry steps.
    """
    from ferrostore.features import FeatureStore
    from ferrostore.features.repo_discovery import discover_objects
    from ferrostore.features.scaffold import init_repo

    step = first_step
    repo = init_repo(root / "feature_repo")
    with (repo / "feature_store.yaml").open("a") as config:
        config.write("registry: ../data/metadata.db\n")
    store = FeatureStore(repo_path=repo)
    diff = store.apply(discover_objects(repo), partial=False)
    print(
        f"\n{step}. feature repo {repo}: applied {len(diff.created)} definitions "
        f"({', '.join(name for _, name in diff.created)})"
    )
    step += 1

    refs = [
        "customer_transactions:total_transactions_30d",
        "customer_transactions:avg_transaction_amount_30d",
        "customer_transactions:transaction_count_7d",
    ]
    entity_df = pd.DataFrame(
        {
            "customer_id": [1001, 1002, 1003],
            "event_timestamp": pd.to_datetime(["2024-01-15", "2024-01-15", "2024-01-15"]),
        }
    )
    training_df = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    print(f"{step}. training set (point-in-time join as of 2024-01-15, three customers):")
    print(training_df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    step += 1

    done = store.materialize_incremental(end_date=dt.datetime.now(dt.UTC))
    print(
        f"{step}. materialized to the online store: "
        + ", ".join(f"{view} ({rows:,} rows)" for view, rows in done.items())
    )
    step += 1

    online = store.get_online_features(features=refs, entity_rows=[{"customer_id": 1001}])
    print(f"{step}. online features for customer 1001:")
    print(online.to_dict())
    step += 1
    # A training set over every customer and day, for the model of the registry steps.
    days = pd.date_range(end=dt.datetime.now(dt.UTC).date(), periods=30, tz="UTC")
    customers = pd.DataFrame({"customer_id": range(1001, 1011)})
    rows = customers.merge(pd.DataFrame({"event_timestamp": days}), how="cross")
    job = store.get_historical_features(entity_df=rows, features=refs)
    training = (job.to_df().dropna(), job.training_set_uri)
    store.close()
    return step, training


def _registry_steps(
    root: Path, training: tuple[Any, str | None], *, first_step: int
) -> tuple[str, int]:
    """Train on the feature store's training set, register, promote and load the model."""
    from ferrostore.cli.quickstart_registry import run_registry_quickstart

    frame, training_set_uri = training
    X = frame[["total_transactions_30d", "avg_transaction_amount_30d", "transaction_count_7d"]]
    # Label (synthetic): a customer whose 30-day spend is above the median.
    spend = frame["total_transactions_30d"] * frame["avg_transaction_amount_30d"]
    y = spend > spend.median()
    print()
    name, step = run_registry_quickstart(
        root / "data",
        X,
        y.astype(int),
        first_step=first_step,
        training_set_uri=training_set_uri,
    )
    return name, step


def _lineage_step(root: Path, name: str, step: int) -> None:
    """Print where the Production model came from, as a tree."""
    from ferrostore.lineage import questions, render

    lineage = questions.why(root / "data" / "metadata.db", f"models:/{name}/Production")
    print(f"\n{step}. lineage of models:/{name}/Production (approved by {lineage.approved_by}):")
    print(render.to_tree(lineage.graph, [lineage.model]))
