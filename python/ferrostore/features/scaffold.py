"""``ferrostore init``: a new feature repo holding the lesson's ``customer_transactions`` example.

Example:
    >>> import pathlib, tempfile
    >>> repo = init_repo(pathlib.Path(tempfile.mkdtemp()) / "feature_repo")
    >>> sorted(p.name for p in repo.iterdir())
    ['data', 'feature_store.yaml', 'features.py']
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ferrostore.errors import AlreadyExists

__all__ = ["FEATURES_PY", "init_repo", "synthetic_transactions"]

FEATURES_PY = """\
# feature_repo/features.py — feature definitions (the lesson's Feast example, ported)

from ferrostore.features import Entity, FeatureView, Field, FileSource
from ferrostore.features.types import Float32, Int64, String
from datetime import timedelta

# Define the entity (the "who" for feature lookups)
customer = Entity(
    name="customer_id",
    join_keys=["customer_id"],
    description="Unique customer identifier"
)

# Define a data source
customer_transactions_source = FileSource(
    path="data/customer_transactions.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp"
)

# Define a feature view (a group of related features)
customer_transaction_features = FeatureView(
    name="customer_transactions",
    entities=[customer],
    ttl=timedelta(days=90),  # Features expire after 90 days
    schema=[
        Field(name="total_transactions_30d", dtype=Int64),
        Field(name="avg_transaction_amount_30d", dtype=Float32),
        Field(name="max_transaction_amount_30d", dtype=Float32),
        Field(name="transaction_count_7d", dtype=Int64),
        Field(name="unique_merchants_30d", dtype=Int64),
    ],
    source=customer_transactions_source,
    online=True,  # Materialize to online store for serving
)
"""


def synthetic_transactions(
    customers: int = 10,
    *,
    start: dt.date = dt.date(2023, 10, 1),
    end: dt.date | None = None,
    seed: int = 7,
) -> pa.Table:
    """Daily feature rows per customer (ids from 1001) from ``start`` to ``end`` (UTC).

    Args:
        customers: How many customers.
        start: First day.
        end: Last day; default: yesterday (UTC), so data reaches close to now.
        seed: Random seed.

    Returns:
        A table with ``customer_id``, the five features, ``event_timestamp`` and
        ``created_timestamp`` (one hour after the event).
    """
    end = end or (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
    days = max(1, (end - start).days + 1)
    rng = np.random.default_rng(seed)
    n = days * customers
    base = np.datetime64(start.isoformat(), "us")
    day_index = np.repeat(np.arange(days), customers)
    ids = np.tile(np.arange(1001, 1001 + customers, dtype=np.int64), days)
    level = rng.poisson(40, customers)[ids - 1001]
    total = rng.poisson(level).astype(np.int64)
    avg = rng.gamma(2.0, 30.0, n).astype(np.float32)
    event = base + (day_index * 86_400_000_000).astype("timedelta64[us]")
    return pa.table(
        {
            "customer_id": ids,
            "total_transactions_30d": total,
            "avg_transaction_amount_30d": avg,
            "max_transaction_amount_30d": (avg * rng.uniform(1.5, 4.0, n)).astype(np.float32),
            "transaction_count_7d": rng.binomial(total, 0.25).astype(np.int64),
            "unique_merchants_30d": np.minimum(total, rng.poisson(12, n)).astype(np.int64),
            "event_timestamp": pa.array(event, pa.timestamp("us", tz="UTC")),
            "created_timestamp": pa.array(
                event + np.timedelta64(3600, "s"), pa.timestamp("us", tz="UTC")
            ),
        }
    )


def init_repo(path: str | os.PathLike[str], *, customers: int = 10) -> Path:
    """Create a feature repo with ``feature_store.yaml``, ``features.py`` and synthetic data.

    Args:
        path: The repo folder: new, or existing and empty.
        customers: How many synthetic customers (ids from 1001).

    Returns:
        The repo folder.

    Raises:
        AlreadyExists: ``path`` exists and is not an empty folder.
    """
    root = Path(path)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise AlreadyExists(f"'{root}' exists and is not an empty folder: expected a new folder")
    (root / "data").mkdir(parents=True, exist_ok=True)
    project = "".join(c if c.isalnum() or c in "_-" else "_" for c in root.absolute().name)
    (root / "feature_store.yaml").write_text(
        f"project: {project or 'feature_repo'}\nprovider: local\n"
        "online_store:\n  type: lmdb\n  path: data/online\n"
        "offline_store:\n  type: file\n"
    )
    (root / "features.py").write_text(FEATURES_PY)
    pq.write_table(
        synthetic_transactions(customers), root / "data" / "customer_transactions.parquet"
    )
    return root
