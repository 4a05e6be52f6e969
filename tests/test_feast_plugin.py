"""ferrostore.feast through the real Feast: apply, materialize, get_online_features, push.

Skipped only when the ``feast`` package cannot be imported (it is an optional extra).
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip(
    "feast", reason="the optional 'feast' package is not installed: pip install feast"
)

from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Float64, Int64, String

from ferrostore.feast import LmdbOnlineStore, LmdbOnlineStoreConfig
from ferrostore.features import OnlineStore

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _hours(n: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


def _repo(tmp_path: Path) -> FeatureStore:
    data = tmp_path / "data"
    data.mkdir()
    drivers = pd.DataFrame(
        {
            "driver_id": [1001, 1001, 1002, 1002, 1003],
            "event_timestamp": [_hours(1), _hours(3), _hours(2), _hours(2), _hours(4)],
            "created": [_hours(1), _hours(3), _hours(5), _hours(6), _hours(4)],
            "conv_rate": [0.1, 0.3, 0.5, 0.6, 0.9],
            "trips": [10, 30, 50, 60, 90],
            "city": ["a", "c", "x", "y", None],
        }
    )
    drivers.to_parquet(data / "drivers.parquet")
    pairs = pd.DataFrame(
        {
            "driver_id": [1001, 1001, 1002],
            "customer": ["ann", "bob", "ann"],
            "event_timestamp": [_hours(1), _hours(2), _hours(3)],
            "rides": [1.5, 2.5, 3.5],
        }
    )
    pairs.to_parquet(data / "pairs.parquet")
    (tmp_path / "feature_store.yaml").write_text(
        textwrap.dedent(
            """\
            project: ferro_feast
            registry: data/registry.db
            provider: local
            online_store:
              type: ferrostore.feast.LmdbOnlineStore
              path: data/online_lmdb
            offline_store:
              type: file
            entity_key_serialization_version: 3
            """
        )
    )
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    customer = Entity(name="customer", join_keys=["customer"], value_type=ValueType.STRING)
    driver_stats = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=dt.timedelta(days=30),
        schema=[
            Field(name="driver_id", dtype=Int64),
            Field(name="conv_rate", dtype=Float64),
            Field(name="trips", dtype=Int64),
            Field(name="city", dtype=String),
        ],
        source=FileSource(
            path=str(data / "drivers.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
        online=True,
    )
    driver_customer = FeatureView(
        name="driver_customer",
        entities=[driver, customer],
        ttl=dt.timedelta(days=30),
        schema=[
            Field(name="driver_id", dtype=Int64),
            Field(name="customer", dtype=String),
            Field(name="rides", dtype=Float32),
        ],
        source=FileSource(path=str(data / "pairs.parquet"), timestamp_field="event_timestamp"),
        online=True,
    )
    store = FeatureStore(repo_path=str(tmp_path))
    store.apply([driver, customer, driver_stats, driver_customer])
    return store


def test_config_resolves_from_feature_store_yaml(tmp_path):
    store = _repo(tmp_path)
    config = store.config
    assert isinstance(config.online_store, LmdbOnlineStoreConfig)
    assert config.online_store.type == "ferrostore.feast.LmdbOnlineStore"
    assert isinstance(store._get_provider().online_store, LmdbOnlineStore)
    assert LmdbOnlineStore.store_path(config) == tmp_path / "data" / "online_lmdb"


def test_apply_registers_one_bytes_keyed_view_per_feature_view(tmp_path):
    _repo(tmp_path)
    views = {v.name: v for v in OnlineStore(tmp_path / "data" / "online_lmdb").views()}
    assert set(views) == {"ferro_feast_driver_stats", "ferro_feast_driver_customer"}
    stats = views["ferro_feast_driver_stats"]
    assert stats.join_keys == (("__feast_entity_key", "bytes"),)
    assert stats.features == (("conv_rate", "bytes"), ("trips", "bytes"), ("city", "bytes"))


def test_materialize_then_get_online_features(tmp_path):
    store = _repo(tmp_path)
    store.materialize(start_date=T0, end_date=_hours(10))
    got = store.get_online_features(
        features=[
            "driver_stats:conv_rate",
            "driver_stats:trips",
            "driver_stats:city",
            "driver_customer:rides",
        ],
        entity_rows=[
            {"driver_id": 1001, "customer": "ann"},
            {"driver_id": 1002, "customer": "ann"},
            {"driver_id": 1003, "customer": "bob"},
            {"driver_id": 9999, "customer": "zed"},
        ],
    ).to_dict()
    assert got["driver_id"] == [1001, 1002, 1003, 9999]
    # 1001: the later event wins; 1002: equal event times, the greater created time wins.
    assert got["conv_rate"] == [0.3, 0.6, 0.9, None]
    assert got["trips"] == [30, 60, 90, None]
    # 1003's city is null in the source; 9999 was never written.
    assert got["city"] == ["c", "y", None, None]
    assert got["rides"] == [1.5, 3.5, None, None]


def test_a_fresh_feature_store_reads_what_another_wrote(tmp_path):
    store = _repo(tmp_path)
    store.materialize(start_date=T0, end_date=_hours(10))
    again = FeatureStore(repo_path=str(tmp_path))
    got = again.get_online_features(
        features=["driver_stats:trips"], entity_rows=[{"driver_id": 1002}]
    ).to_dict()
    assert got["trips"] == [60]


def test_newer_row_wins_whatever_the_write_order(tmp_path):
    store = _repo(tmp_path)
    store.materialize(start_date=T0, end_date=_hours(10))

    def push(event: dt.datetime, created: dt.datetime, trips: int) -> None:
        store.write_to_online_store(
            "driver_stats",
            pd.DataFrame(
                {
                    "driver_id": [1001],
                    "event_timestamp": [event],
                    "created": [created],
                    "conv_rate": [0.0],
                    "trips": [trips],
                    "city": ["pushed"],
                }
            ),
        )

    def trips() -> int:
        return store.get_online_features(
            features=["driver_stats:trips"], entity_rows=[{"driver_id": 1001}]
        ).to_dict()["trips"][0]

    push(_hours(2), _hours(9), 1)  # older event than the stored one (hour 3): skipped
    assert trips() == 30
    push(_hours(3), _hours(2), 2)  # same event, older created time: skipped
    assert trips() == 30
    push(_hours(3), _hours(8), 3)  # same event, newer created time: wins
    assert trips() == 3
    push(_hours(7), _hours(7), 4)  # newer event: wins
    assert trips() == 4


def test_online_read_without_created_time_and_with_naive_times(tmp_path):
    store = _repo(tmp_path)
    provider = store._get_provider()
    view = store.get_feature_view("driver_stats")
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=7)])
    online = provider.online_store
    naive = dt.datetime(2024, 2, 1, 12)
    online.online_write_batch(
        store.config,
        view,
        [(key, {"trips": Value(int64_val=5)}, naive, None)],
        progress=None,
    )
    [(event_ts, values)] = online.online_read(store.config, view, [key])
    assert event_ts == naive.replace(tzinfo=dt.UTC)
    assert values is not None
    assert values["trips"].int64_val == 5
    # Features missing from the written row are stored as null and left out on read.
    assert set(values) == {"trips"}
    assert online.online_read(store.config, view, [key], ["conv_rate"]) == [(event_ts, {})]
    missing = EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=8)])
    assert online.online_read(store.config, view, [missing, key])[0] == (None, None)


def test_deleting_a_feature_view_and_teardown_remove_its_views(tmp_path):
    store = _repo(tmp_path)
    store.materialize(start_date=T0, end_date=_hours(10))
    lmdb = tmp_path / "data" / "online_lmdb"
    driver_customer = store.get_feature_view("driver_customer")
    store.apply([], objects_to_delete=[driver_customer], partial=False)
    assert [v.name for v in OnlineStore(lmdb).views()] == ["ferro_feast_driver_stats"]
    store.teardown()
    assert OnlineStore(lmdb).views() == []
