"""Bad input to the feature store: each failure is a clear ``ferrostore.errors`` class."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ferrostore.errors import (
    AlreadyExists,
    FerrostoreError,
    InvalidArgument,
    NotFound,
    SchemaMismatch,
)
from ferrostore.features import Entity, FeatureStore, FeatureView, Field, FileSource
from ferrostore.features.types import Array, Float32, Int64, String

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
customer = Entity(name="customer", join_keys=["customer_id"])


def view(**overrides) -> FeatureView:
    kwargs = {
        "name": "stats",
        "entities": [customer],
        "ttl": dt.timedelta(days=1),
        "schema": [Field(name="orders", dtype=Int64)],
        "source": FileSource(path="data/stats.parquet", timestamp_field="ts"),
    }
    kwargs.update(overrides)
    return FeatureView(**kwargs)


@pytest.fixture
def store(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(f"project: p\nregistry: {tmp_path / 'meta.db'}\n")
    pq.write_table(
        pa.table({"customer_id": [1], "orders": [3], "name": ["x"], "ts": [T0]}),
        repo / "data" / "stats.parquet",
    )
    with FeatureStore(repo_path=repo) as s:
        s.apply([customer, view()])
        yield s


def entity_df(**columns):
    data = {"customer_id": [1], "event_timestamp": [T0]}
    data.update(columns)
    return pd.DataFrame({k: v for k, v in data.items() if v is not None})


def test_missing_join_key_or_timestamp_column(store):
    with pytest.raises(SchemaMismatch, match="customer_id"):
        store.get_historical_features(entity_df(customer_id=None), ["stats:orders"])
    with pytest.raises(SchemaMismatch, match="event_timestamp"):
        store.get_historical_features(entity_df(event_timestamp=None), ["stats:orders"])
    two = entity_df(other=[T0])
    two = two.rename(columns={"event_timestamp": "a"})
    with pytest.raises(SchemaMismatch, match="exactly one datetime"):
        store.get_historical_features(two, ["stats:orders"])


def test_single_datetime_column_is_the_timestamp(store):
    df = pd.DataFrame({"customer_id": [1], "when": [T0]})
    out = store.get_historical_features(df, ["stats:orders"]).to_arrow()
    assert out.column("orders").to_pylist() == [3]


def test_unknown_view_feature_and_bad_reference(store):
    with pytest.raises(NotFound, match="nope"):
        store.get_historical_features(entity_df(), ["nope:orders"])
    with pytest.raises(NotFound, match="missing"):
        store.get_historical_features(entity_df(), ["stats:missing"])
    with pytest.raises(InvalidArgument, match="view:feature"):
        store.get_historical_features(entity_df(), ["orders"])
    with pytest.raises(InvalidArgument):
        store.get_historical_features(entity_df(), ["stats:orders", "stats:orders"])
    with pytest.raises(NotFound):
        store.get_online_features(["nope:orders"], [{"customer_id": 1}])
    # References that are not strings, hashable or not, are refused on the cached path too.
    for bad in (["stats:orders", ["stats:orders"]], ("stats:orders", 7)):
        for _ in range(2):
            with pytest.raises(InvalidArgument):
                store.get_online_features(bad, [{"customer_id": 1}])


def test_wrong_key_type(store):
    with pytest.raises(SchemaMismatch):
        store.get_historical_features(entity_df(customer_id=["1"]), ["stats:orders"]).to_df()
    with pytest.raises(SchemaMismatch):
        store.get_online_features(["stats:orders"], [{"customer_id": "1"}])
    with pytest.raises(SchemaMismatch):
        store.get_online_features(["stats:orders"], [{"customer_id": "1"}, {"customer_id": "2"}])


def test_empty_inputs(store):
    with pytest.raises(InvalidArgument, match="no rows"):
        store.get_historical_features(entity_df().iloc[:0], ["stats:orders"])
    with pytest.raises(InvalidArgument):
        store.get_online_features(["stats:orders"], [])
    with pytest.raises(InvalidArgument):
        store.get_historical_features(entity_df(), [])
    with pytest.raises(SchemaMismatch, match="customer_id"):
        store.get_online_features(["stats:orders"], [{"other": 1}])


def test_missing_parquet_file(store):
    (store.repo_path / "data" / "stats.parquet").unlink()
    with pytest.raises(NotFound, match=r"stats\.parquet"):
        store.get_historical_features(entity_df(), ["stats:orders"]).to_df()
    with pytest.raises(NotFound, match=r"stats\.parquet"):
        store.materialize(T0, T0)
    with pytest.raises(NotFound, match=r"stats\.parquet"):
        store.apply([view()])


def test_apply_validation(store):
    other = Entity(name="other", join_keys=["customer_id"])
    with pytest.raises(NotFound, match="other"):
        store.apply([view(name="v2", entities=[other])])
    with pytest.raises(SchemaMismatch, match="absent"):
        store.apply([view(schema=[Field(name="absent", dtype=Int64)])])
    with pytest.raises(SchemaMismatch, match="String"):
        store.apply([view(schema=[Field(name="orders", dtype=String)])])
    with pytest.raises(SchemaMismatch, match="name"):
        store.apply([view(schema=[Field(name="name", dtype=Array(Float32))])])
    with pytest.raises(AlreadyExists, match="stats"):
        store.apply([view(), view(ttl=dt.timedelta(days=2))])
    with pytest.raises(InvalidArgument):
        store.apply(["not a definition"])
    # A failed apply changed nothing.
    assert [v.ttl for v in store.list_feature_views()] == [dt.timedelta(days=1)]


def test_materialize_arguments(store):
    with pytest.raises(InvalidArgument, match="before"):
        store.materialize(T0, T0 - dt.timedelta(days=1))
    with pytest.raises(NotFound, match="nope"):
        store.materialize(T0, T0, feature_views=["nope"])
    with pytest.raises(InvalidArgument):
        store.materialize("yesterday", T0)


def test_bad_definitions():
    with pytest.raises(InvalidArgument):
        Entity(name="")
    with pytest.raises(InvalidArgument):
        Entity(name="e", join_keys=["a", "a"])
    with pytest.raises(InvalidArgument):
        Field(name="f", dtype=int)
    with pytest.raises(InvalidArgument):
        view(ttl=dt.timedelta(days=-1))
    with pytest.raises(InvalidArgument):
        view(entities=[])
    with pytest.raises(NotFound):
        view()[["absent"]]


def test_repo_config_errors(tmp_path: Path):
    with pytest.raises(NotFound, match=r"feature_store\.yaml"):
        FeatureStore(repo_path=tmp_path)
    (tmp_path / "feature_store.yaml").write_text("project: p\nprovider: gcp\n")
    with pytest.raises(InvalidArgument, match="provider"):
        FeatureStore(repo_path=tmp_path)
    (tmp_path / "feature_store.yaml").write_text("registry: x.db\n")
    with pytest.raises(InvalidArgument, match="project"):
        FeatureStore(repo_path=tmp_path)
    (tmp_path / "feature_store.yaml").write_text("project: p\nonline_store:\n  type: redis\n")
    with pytest.raises(FerrostoreError, match="online_store"):
        FeatureStore(repo_path=tmp_path)


@pytest.mark.parametrize("cache_mb", ["-1", "many", "true", "[1]"])
def test_online_cache_mb_not_a_size(tmp_path: Path, cache_mb: str):
    (tmp_path / "feature_store.yaml").write_text(
        f"project: p\nonline_store:\n  type: lmdb\n  cache_mb: {cache_mb}\n"
    )
    with pytest.raises(InvalidArgument, match="cache_mb"):
        FeatureStore(repo_path=tmp_path)


def test_online_cache_mb_sets_the_online_store_budget(tmp_path: Path):
    (tmp_path / "feature_store.yaml").write_text(
        "project: p\nonline_store:\n  type: lmdb\n  cache_mb: 0.5\n"
    )
    store = FeatureStore(repo_path=tmp_path)
    assert store.config.online_cache_bytes == 1 << 19
    online = store.online_store
    online.register_view("v", {"k": "int64"}, {"x": "int64"})
    assert online.preload() == {"v": True}
    rows = 20_000
    when = [dt.datetime(2024, 1, 1)] * rows
    online.write("v", {"k": list(range(rows)), "x": [0] * rows, "event_timestamp": when})
    assert online.preload() == {"v": False}  # past 0.5 MiB
