"""FeatureStore end to end: registry on SQLite and PostgreSQL, offline joins, online reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ferrostore.errors import InvalidArgument, SchemaMismatch, StorageError
from ferrostore.features import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FieldStatus,
    FileSource,
)
from ferrostore.features.types import Array, Float32, Float64, Int64, String

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TOKYO = ZoneInfo("Asia/Tokyo")


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def make_repo(tmp_path: Path, metadata_url: str | None = None) -> Path:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    text = "project: test_project\n"
    if metadata_url is not None:
        text += f"registry:\n  registry_type: sql\n  path: {metadata_url}\n"
    (repo / "feature_store.yaml").write_text(text)
    return repo


customer = Entity(name="customer", join_keys=["customer_id"], description="a customer")
merchant = Entity(name="merchant", join_keys=["merchant_id"])
store_item = Entity(name="store_item", join_keys=["store", "item"])


def customer_view(ttl: dt.timedelta = dt.timedelta(days=10)) -> FeatureView:
    return FeatureView(
        name="customer_stats",
        entities=[customer],
        ttl=ttl,
        schema=[Field(name="spend", dtype=Float32), Field(name="orders", dtype=Int64)],
        source=FileSource(
            path="data/customers.parquet",
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
    )


def write_customers(repo: Path) -> None:
    pq.write_table(
        pa.table(
            {
                "customer_id": [1, 1, 1, 2, 2],
                "spend": [1.0, 2.0, 2.5, 10.0, 20.0],
                "orders": [1, 2, 3, 10, 20],
                "event_timestamp": [day(0), day(5), day(5), day(1), day(30)],
                "created": [day(0), day(5), day(6), day(1), day(30)],
            }
        ),
        repo / "data" / "customers.parquet",
    )


@pytest.fixture
def repo(tmp_path: Path, metadata_url: str) -> Path:
    repo = make_repo(tmp_path, metadata_url)
    write_customers(repo)
    return repo


@pytest.fixture
def sqlite_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path, str(tmp_path / "meta.db"))
    write_customers(repo)
    return repo


def test_apply_plan_list_get_on_both_backends(repo: Path):
    with FeatureStore(repo_path=repo) as store:
        view = customer_view()
        plan = store.plan([customer, view])
        assert plan.created == [("entity", "customer"), ("feature_view", "customer_stats")]
        assert store.list_feature_views() == []
        diff = store.apply([customer, view])
        assert diff.created == plan.created
        assert store.apply([customer, view]).has_changes is False
        assert [e.name for e in store.list_entities()] == ["customer"]
        assert store.get_feature_view("customer_stats") == view
        assert store.get_entity("customer").join_keys == ["customer_id"]
        changed = customer_view(ttl=dt.timedelta(days=3))
        assert store.plan([customer, changed]).updated == [("feature_view", "customer_stats")]
        service = FeatureService(name="svc", features=[view[["spend"]]])
        store.apply([changed, service])
        assert store.get_feature_service("svc").feature_refs() == ["customer_stats:spend"]
        assert store.get_feature_view("customer_stats").ttl == dt.timedelta(days=3)
        diff = store.apply([customer], partial=False)
        assert set(diff.deleted) == {("feature_view", "customer_stats"), ("feature_service", "svc")}
        assert store.list_feature_views() == []
    with FeatureStore(repo_path=repo) as again:
        assert [e.name for e in again.list_entities()] == ["customer"]


def test_historical_ttl_ties_and_rows_before_data(repo: Path):
    with FeatureStore(repo_path=repo) as store:
        store.apply([customer, customer_view()])
        entity_df = pd.DataFrame(
            {
                "customer_id": [1, 1, 2, 2, 1, 3, 1],
                "event_timestamp": pd.to_datetime(
                    [day(-1), day(5), day(11), day(11.5), day(15), day(3), day(5)]
                ),
                "label": [0, 1, 0, 1, 0, 1, 1],
            }
        )
        job = store.get_historical_features(
            entity_df, ["customer_stats:spend", "customer_stats:orders"]
        )
        out = job.to_arrow()
        # Exactly one row per input row, in order, caller columns kept.
        assert out.column_names == ["customer_id", "event_timestamp", "label", "spend", "orders"]
        assert out.column("label").to_pylist() == [0, 1, 0, 1, 0, 1, 1]
        # day -1: before any data; day 5: tie at day 5 -> greatest created (orders 3);
        # day 11 for customer 2: row of day 1 is 10 days old (inclusive); 11.5 is outside.
        assert out.column("orders").to_pylist() == [None, 3, 10, None, 3, None, 3]
        assert out.schema.field("spend").type == pa.float32()
        df = job.to_df()
        assert len(df) == 7
        assert isinstance(job.to_polars(), pl.DataFrame)


def test_full_feature_names_and_collisions(sqlite_repo: Path):
    with FeatureStore(repo_path=sqlite_repo) as store:
        store.apply([customer, customer_view()])
        entity_df = pa.table({"customer_id": [1], "event_timestamp": [day(6)], "spend": [0.0]})
        with pytest.raises(InvalidArgument, match="spend"):
            store.get_historical_features(entity_df, ["customer_stats:spend"]).to_arrow()
        out = store.get_historical_features(
            entity_df, ["customer_stats:spend"], full_feature_names=True
        ).to_arrow()
        assert out.column("customer_stats__spend").to_pylist() == [2.5]


def test_several_views_entities_ttls_composite_and_string_keys(sqlite_repo: Path):
    repo = sqlite_repo
    pq.write_table(
        pa.table(
            {
                "merchant_id": ["m1", "m2", "m1"],
                "risk": [0.1, 0.9, 0.2],
                "ts": [day(0), day(0), day(20)],
            }
        ),
        repo / "data" / "merchants.parquet",
    )
    folder = repo / "data" / "items"
    folder.mkdir()
    pq.write_table(
        pa.table(
            {
                "store": pa.array([1, 1], pa.int32()),
                "item": ["a", "b"],
                "price": [3.0, 4.0],
                "emb": [[1.0, 2.0], [3.0, 4.0]],
                "ts": pa.array(
                    [dt.datetime(2024, 1, 2, 9, 0, tzinfo=TOKYO)] * 2,
                    pa.timestamp("ns", tz="Asia/Tokyo"),
                ),
            }
        ),
        folder / "part-0.parquet",
    )
    merchants = FeatureView(
        name="merchants",
        entities=[merchant],
        ttl=None,
        schema=[Field(name="risk", dtype=Float64)],
        source=FileSource(path="data/merchants.parquet", timestamp_field="ts"),
    )
    items = FeatureView(
        name="items",
        entities=[store_item],
        ttl=dt.timedelta(hours=1),
        schema=[
            Field(name="item", dtype=String),
            Field(name="price", dtype=Float64),
            Field(name="emb", dtype=Array(Float32)),
        ],
        source=FileSource(path=str(folder), timestamp_field="ts"),
    )
    with FeatureStore(repo_path=repo) as store:
        store.apply([customer, merchant, store_item, customer_view(), merchants, items])
        # 2024-01-02 09:00 in Tokyo is 00:00 UTC; entity times given in New York time.
        ny = pd.to_datetime(["2024-01-01 19:30", "2024-01-01 18:59", "2024-01-21 00:00"])
        entity_df = pl.DataFrame(
            {
                "customer_id": [1, 2, 1],
                "merchant_id": ["m1", "m2", "m1"],
                "store": [1, 1, 1],
                "item": ["b", "a", "zz"],
                "when": pl.Series(ny).dt.replace_time_zone("America/New_York"),
            }
        )
        out = store.get_historical_features(
            entity_df,
            ["merchants:risk", "items:price", "items:emb", "customer_stats:orders"],
            full_feature_names=True,
        ).to_arrow()
        assert out.column("merchants__risk").to_pylist() == [0.1, 0.9, 0.2]
        assert out.column("items__price").to_pylist() == [4.0, None, None]
        assert out.column("items__emb").to_pylist() == [[3.0, 4.0], None, None]
        assert out.column("customer_stats__orders").to_pylist() == [1, None, None]

        store.materialize(day(-1), day(40))
        resp = store.get_online_features(
            ["items:price", "merchants:risk"],
            entity_rows=[
                {"store": 1, "item": "a", "merchant_id": "m1"},
                {"store": 1, "item": "zz", "merchant_id": "m9"},
            ],
        )
        assert resp.to_dict()["price"] == [None, None]  # ttl 1 hour: expired online
        assert resp.statuses["price"] == [FieldStatus.OUTSIDE_MAX_AGE, FieldStatus.NOT_FOUND]
        assert resp.to_dict()["risk"] == [0.2, None]


def test_materialize_online_ttl_and_newer_wins(repo: Path):
    with FeatureStore(repo_path=repo) as store:
        store.apply([customer, customer_view(ttl=dt.timedelta(0))])
        rows = store.materialize(day(0), day(5))
        assert rows == {"customer_stats": 4}
        one = store.get_online_features(
            ["customer_stats:spend", "customer_stats:orders"], [{"customer_id": 1}]
        )
        assert one.to_dict() == {"customer_id": [1], "spend": [2.5], "orders": [3]}
        assert one.statuses["orders"] == [FieldStatus.PRESENT]
        # A later window, then an older one again: older never overwrites newer.
        store.materialize(day(6), day(40))
        store.materialize(day(0), day(2))
        many = store.get_online_features(
            ["customer_stats:orders"], [{"customer_id": 2}, {"customer_id": 1}, {"customer_id": 9}]
        )
        assert many.to_dict(include_status=True) == {
            "customer_id": [2, 1, 9],
            "orders": [20, 3, None],
            "orders__status": ["PRESENT", "PRESENT", "NOT_FOUND"],
        }
        assert many.to_arrow().num_rows == 3
        assert list(many.to_df().columns) == ["customer_id", "orders"]
        intervals = store.list_materializations("customer_stats")
        assert [(i.start, i.end) for i in intervals] == [
            (day(0), day(5)),
            (day(6), day(40)),
            (day(0), day(2)),
        ]


def test_online_entity_rows_in_every_shape(sqlite_repo: Path):
    import numpy as np

    with FeatureStore(repo_path=sqlite_repo) as store:
        store.apply([customer, customer_view(ttl=dt.timedelta(0))])
        store.materialize(day(0), day(40))
        refs = ["customer_stats:orders", "customer_stats:spend"]
        expected = store.get_online_features(refs, [{"customer_id": k} for k in (2, 1, 9)])
        want = expected.to_dict()
        assert want["customer_id"] == [2, 1, 9] and want["orders"][2] is None
        for rows in (
            {"customer_id": [2, 1, 9]},
            {"customer_id": np.array([2, 1, 9])},
            {"customer_id": pa.array([2, 1, 9])},
            {"customer_id": pd.Series([2, 1, 9])},
            ({"customer_id": k} for k in (2, 1, 9)),  # not a list: the general path
            [pd.Series({"customer_id": k}).to_dict() for k in (2, 1, 9)],
        ):
            got = store.get_online_features(refs, rows if isinstance(rows, dict) else list(rows))
            assert got.to_dict() == want
            assert got.statuses == expected.statuses
        # Every row must hold every key; extra keys come back as columns.
        with pytest.raises(SchemaMismatch, match="entity row 0 lacks join key 'request_id'"):
            store.get_online_features(
                refs, [{"customer_id": 1}, {"customer_id": 1, "request_id": "r"}]
            )
        got = store.get_online_features(
            refs, [{"customer_id": 1, "request_id": "a"}, {"customer_id": 1, "request_id": "b"}]
        )
        assert got.to_dict()["request_id"] == ["a", "b"]
        assert got.to_dict()["orders"] == [3, 3]
        # Each to_dict() is the caller's own: changing one leaves the response as it was.
        got.to_dict()["orders"].append(99)
        assert got.to_dict()["orders"] == [3, 3]
        missing = r"lack join key\(s\) \['customer_id'\] of feature view 'customer_stats'"
        for rows in ([{"cust": 1}], {"cust": [1]}):
            with pytest.raises(SchemaMismatch, match=missing):
                store.get_online_features(refs, rows)
        with pytest.raises(InvalidArgument, match="different lengths"):
            store.get_online_features(refs, {"customer_id": [1, 2], "request_id": ["a"]})
        with pytest.raises(InvalidArgument, match="list of dicts"):
            store.get_online_features(refs, "customer_id")


def test_online_ttl_is_enforced_at_read_time(sqlite_repo: Path):
    with FeatureStore(repo_path=sqlite_repo) as store:
        store.apply([customer, customer_view(ttl=dt.timedelta(days=10))])
        store.materialize(day(0), day(40))
        resp = store.get_online_features(["customer_stats:orders"], [{"customer_id": 1}])
        assert resp.to_dict()["orders"] == [None]
        assert resp.statuses["orders"] == [FieldStatus.OUTSIDE_MAX_AGE]


def test_write_to_online_store_and_feature_service(sqlite_repo: Path):
    view = customer_view(ttl=dt.timedelta(0))
    service = FeatureService(name="model_v1", features=[view[["orders"]]])
    with FeatureStore(repo_path=sqlite_repo) as store:
        store.apply([customer, view, service])
        now = dt.datetime.now(dt.UTC)
        df = pd.DataFrame(
            {
                "customer_id": [7],
                "spend": [1.5],
                "orders": [4],
                "event_timestamp": [now],
                "created": [now],
            }
        )
        assert store.write_to_online_store("customer_stats", df) == 1
        svc = store.get_feature_service("model_v1")
        resp = store.get_online_features(svc, [{"customer_id": 7}], full_feature_names=True)
        assert resp.to_dict() == {"customer_id": [7], "customer_stats__orders": [4]}
        out = store.get_historical_features(
            pa.table({"customer_id": [1], "event_timestamp": [day(5)]}), svc
        ).to_arrow()
        assert out.column("orders").to_pylist() == [3]


def test_materialize_incremental_continues_from_last_end(sqlite_repo: Path):
    with FeatureStore(repo_path=sqlite_repo) as store:
        store.apply([customer, customer_view(ttl=dt.timedelta(0))])
        assert store.materialize_incremental(day(2)) == {"customer_stats": 2}
        assert store.materialize_incremental(day(40)) == {"customer_stats": 3}
        intervals = store.list_materializations("customer_stats")
        assert intervals[1].start == day(2) and intervals[1].end == day(40)


def test_materialize_streams_in_bounded_chunks(sqlite_repo: Path, monkeypatch):
    from ferrostore.features import store as store_module

    monkeypatch.setattr(store_module, "_MATERIALIZE_BATCH_ROWS", 1)
    monkeypatch.setattr(store_module, "_MATERIALIZE_CHUNK_ROWS", 2)
    with FeatureStore(repo_path=sqlite_repo) as store:
        store.apply([customer, customer_view(ttl=dt.timedelta(0))])
        chunks = []
        real = store.online_store.write_chunks

        def recording(view, stream, **kw):
            return real(view, (chunks.append(t.num_rows) or t for t in stream), **kw)

        monkeypatch.setattr(store.online_store, "write_chunks", recording)
        store.materialize(day(0), day(40))
        assert chunks == [2, 2, 1]
        resp = store.get_online_features(["customer_stats:orders"], [{"customer_id": 1}])
        assert resp.to_dict()["orders"] == [3]


def test_a_materialize_that_fails_midway_writes_nothing(sqlite_repo: Path, monkeypatch):
    from ferrostore.features import store as store_module

    monkeypatch.setattr(store_module, "_MATERIALIZE_BATCH_ROWS", 1)
    monkeypatch.setattr(store_module, "_MATERIALIZE_CHUNK_ROWS", 2)
    with FeatureStore(repo_path=sqlite_repo) as store:
        store.apply([customer, customer_view(ttl=dt.timedelta(0))])
        real = store._cast_for_online
        calls = []

        def failing(view, table):
            calls.append(table.num_rows)
            if len(calls) == 4:  # the second chunk, after the first was written
                raise StorageError("the disk went away")
            return real(view, table)

        monkeypatch.setattr(store, "_cast_for_online", failing)
        with pytest.raises(StorageError, match="disk went away"):
            store.materialize(day(0), day(40))
        assert store.online_store.count("customer_stats") == 0
        assert store.list_materializations("customer_stats") == []
