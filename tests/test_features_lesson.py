"""The lesson's two Feast examples, verbatim but for imports; the CLI; the quickstart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ferrostore.cli import main
from ferrostore.features.scaffold import FEATURES_PY, init_repo

LESSON_DEFINITIONS = """\
# feature_repo/features.py — Feast feature definitions

from feast import Entity, FeatureView, Field, FileSource
from feast.types import Float32, Int64, String
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

LESSON_USAGE = """\
# Using Feast for training and serving
from feast import FeatureStore
import pandas as pd

store = FeatureStore(repo_path="feature_repo/")

# --- OFFLINE: Get features for training ---
# Point-in-time correct join — no data leakage!
entity_df = pd.DataFrame({
    "customer_id": [1001, 1002, 1003],
    "event_timestamp": pd.to_datetime([
        "2024-01-15", "2024-01-15", "2024-01-15"
    ])
})

training_df = store.get_historical_features(
    entity_df=entity_df,
    features=[
        "customer_transactions:total_transactions_30d",
        "customer_transactions:avg_transaction_amount_30d",
        "customer_transactions:transaction_count_7d",
    ]
).to_df()

print("Training features:")
print(training_df)

# --- ONLINE: Get features for serving ---
# Materialize features to the online store first
store.materialize_incremental(end_date=datetime.now())

# Then retrieve for a single customer at serving time (low latency)
online_features = store.get_online_features(
    features=[
        "customer_transactions:total_transactions_30d",
        "customer_transactions:avg_transaction_amount_30d",
        "customer_transactions:transaction_count_7d",
    ],
    entity_rows=[{"customer_id": 1001}]
).to_dict()

print("\\nOnline features for customer 1001:")
print(online_features)
"""


def port(source: str) -> str:
    """Change only the imports: ``feast`` becomes ``ferrostore.features``."""
    return source.replace(
        "from feast.types import", "from ferrostore.features.types import"
    ).replace("from feast import", "from ferrostore.features import")


def test_scaffold_holds_the_lesson_definitions():
    assert FEATURES_PY.split("\n", 1)[1] == port(LESSON_DEFINITIONS).split("\n", 1)[1]


def test_lesson_examples_run_verbatim(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERROSTORE_METADATA_URL", raising=False)
    init_repo("feature_repo")
    Path("feature_repo/features.py").write_text(port(LESSON_DEFINITIONS))
    assert main(["apply", "--repo", "feature_repo"]) == 0
    namespace: dict = {}
    exec(
        compile("from datetime import datetime\n" + port(LESSON_USAGE), "lesson", "exec"), namespace
    )
    training_df = namespace["training_df"]
    assert list(training_df.columns) == [
        "customer_id",
        "event_timestamp",
        "total_transactions_30d",
        "avg_transaction_amount_30d",
        "transaction_count_7d",
    ]
    assert training_df["customer_id"].tolist() == [1001, 1002, 1003]
    assert training_df["total_transactions_30d"].notna().all()
    online = namespace["online_features"]
    assert online["customer_id"] == [1001]
    assert isinstance(online["total_transactions_30d"][0], int)
    assert set(online) == {
        "customer_id",
        "total_transactions_30d",
        "avg_transaction_amount_30d",
        "transaction_count_7d",
    }
    assert "Online features for customer 1001:" in capsys.readouterr().out


def test_cli_repo_commands(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv("FERROSTORE_METADATA_URL", raising=False)
    repo = str(tmp_path / "repo")
    assert main(["init", repo]) == 0
    assert main(["init", repo]) == 1  # exists and is not empty
    assert main(["plan", "--repo", repo]) == 0
    assert "+ feature_view customer_transactions (create)" in capsys.readouterr().out
    assert main(["apply", "--repo", repo]) == 0
    assert main(["apply", "--repo", repo]) == 0
    assert "no changes" in capsys.readouterr().out
    assert (
        main(
            [
                "materialize",
                "2024-01-01",
                "2024-01-31",
                "--repo",
                repo,
                "--views",
                "customer_transactions",
            ]
        )
        == 0
    )
    assert "customer_transactions: 310 rows materialized" in capsys.readouterr().out
    end = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    assert main(["materialize-incremental", end, "--repo", repo]) == 0
    assert main(["materialize-incremental", "now", "--repo", repo]) == 0
    capsys.readouterr()
    assert main(["feature-views", "list", "--repo", repo]) == 0
    assert "customer_transactions  customer_id" in capsys.readouterr().out
    assert main(["entities", "list", "--repo", repo]) == 0
    assert "Unique customer identifier" in capsys.readouterr().out
    monkeypatch.chdir(repo)
    assert main(["entities", "list"]) == 0
    assert main(["materialize", "2024-02-01", "2024-01-01"]) == 1
    assert "InvalidArgument" in capsys.readouterr().err
    assert main(["apply", "--repo", str(tmp_path / "missing")]) == 1
    assert "NotFound" in capsys.readouterr().err


def test_apply_removes_definitions_deleted_from_the_repo(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv("FERROSTORE_METADATA_URL", raising=False)
    repo = tmp_path / "repo"
    init_repo(repo)
    assert main(["apply", "--repo", str(repo)]) == 0
    (repo / "features.py").write_text(
        "from ferrostore.features import Entity\ncustomer = Entity(name='customer_id')\n"
    )
    assert main(["apply", "--repo", str(repo)]) == 0
    assert "- feature_view customer_transactions (delete)" in capsys.readouterr().out
    (repo / "broken.py").write_text("import no_such_module_here\n")
    assert main(["apply", "--repo", str(repo)]) == 1
    assert "broken.py" in capsys.readouterr().err


def test_quickstart_prints_the_feature_store_steps(tmp_path: Path, capsys):
    from ferrostore.cli.quickstart import run_quickstart

    run_quickstart(str(tmp_path / "qs"), customers=200)
    out = capsys.readouterr().out
    for step in ("6. feature repo", "7. training set", "8. materialized", "9. online features"):
        assert step in out
    assert "'customer_id': [1001]" in out
