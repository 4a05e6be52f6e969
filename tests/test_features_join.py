"""The point-in-time join (the Rust kernel) against the brute-force reference, and its tie rules."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferrostore.errors import SchemaMismatch
from ferrostore.features import FileSource, offline
from pit_reference import reference_join

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SECOND = 1_000_000


def _join(entities: pa.Table, features: pa.Table, **kwargs):
    batch = offline.point_in_time_join(entities, features, **kwargs)
    return {name: batch.column(name).to_pylist() for _, name in kwargs["columns"]}


@st.composite
def cases(draw, *, string_keys: bool = False, composite: bool = False):
    nkeys = 2 if composite else 1
    key = st.integers(0, 3).map(lambda k: f"k{k}") if string_keys else st.integers(0, 3)
    keys = st.tuples(*[key] * nkeys)
    seconds = st.integers(0, 12)
    with_created = draw(st.booleans())
    feature_rows = draw(st.lists(st.tuples(keys, seconds), max_size=25))
    entity_rows = draw(st.lists(st.tuples(keys, seconds), min_size=1, max_size=15))
    ttl = draw(st.sampled_from([None, 0, 1, 2, 3, 5, 100]))
    # Few distinct created times, some null: ties on (key, event time, created) are common.
    created = (
        draw(
            st.lists(
                st.one_of(st.none(), st.integers(0, 3)),
                min_size=len(feature_rows),
                max_size=len(feature_rows),
            )
        )
        if with_created
        else None
    )
    # Every row has its own value, so which row a tie resolves to is observable.
    values = list(range(len(feature_rows)))
    ent_tz = draw(st.sampled_from([None, "UTC", "America/New_York"]))
    feat_unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
    feat_tz = draw(st.sampled_from([None, "UTC", "Asia/Kolkata"]))
    return feature_rows, entity_rows, ttl, created, values, ent_tz, feat_unit, feat_tz


def _tables(case, nkeys: int):
    feature_rows, entity_rows, ttl, created, values, ent_tz, feat_unit, feat_tz = case

    def ts(seconds: list[int], unit: str, tz: str | None) -> pa.Array:
        micros = pa.array([s * SECOND + 1_704_067_200 * SECOND for s in seconds], pa.int64())
        utc = micros.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp(unit, tz="UTC"))
        return utc.cast(pa.timestamp(unit, tz=tz)) if tz else utc.cast(pa.timestamp(unit))

    names = [f"key{i}" for i in range(nkeys)]
    ent = {n: [k[i] for k, _ in entity_rows] for i, n in enumerate(names)}
    ent["when"] = ts([s for _, s in entity_rows], "us", ent_tz)
    ent["caller"] = list(range(len(entity_rows)))
    feat = {n: [k[i] for k, _ in feature_rows] for i, n in enumerate(names)}
    int_keys = isinstance(entity_rows[0][0][0], int)
    key_type = pa.int32() if int_keys else pa.string()
    feat_schema = [pa.field(n, key_type) for n in names]
    feat["event_ts"] = ts([s for _, s in feature_rows], feat_unit, feat_tz)
    feat_schema.append(pa.field("event_ts", feat["event_ts"].type))
    if created is not None:
        feat["created"] = pa.array(
            [
                None if c is None else BASE.replace(tzinfo=None) + dt.timedelta(seconds=c)
                for c in created
            ],
            pa.timestamp("us"),
        )
        feat_schema.append(pa.field("created", pa.timestamp("us")))
    feat["value"] = values
    feat_schema.append(pa.field("value", pa.int64()))
    entities = pa.table(ent)
    features = pa.table(feat, schema=pa.schema(feat_schema))
    kwargs = {
        "entity_keys": names,
        "feature_keys": names,
        "entity_timestamp": "when",
        "feature_timestamp": "event_ts",
        "created_timestamp": "created" if created is not None else None,
        "ttl_micros": None if ttl is None else ttl * SECOND,
        "columns": [("value", "out")],
    }
    return entities, features, kwargs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_join_matches_reference_int_keys(case):
    entities, features, kwargs = _tables(case, 1)
    assert _join(entities, features, **kwargs) == reference_join(entities, features, **kwargs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(string_keys=True, composite=True))
def test_join_matches_reference_composite_string_keys(case):
    entities, features, kwargs = _tables(case, 2)
    assert _join(entities, features, **kwargs) == reference_join(entities, features, **kwargs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), cuts=st.lists(st.integers(0, 40), max_size=3))
def test_join_over_chunked_sources_matches_reference(case, cuts):
    entities, features, kwargs = _tables(case, 1)
    n = features.num_rows
    bounds = sorted(min(c, n) for c in cuts)
    pieces = [features.slice(a, b - a) for a, b in zip([0, *bounds], [*bounds, n], strict=True)]
    chunked = pa.Table.from_batches([b for p in pieces for b in p.to_batches()], features.schema)
    assert _join(entities, chunked, **kwargs) == reference_join(entities, features, **kwargs)


def test_scan_skips_whole_row_groups_outside_the_window(tmp_path):
    times = [BASE + dt.timedelta(days=d) for d in range(10)]
    table = pa.table(
        {"id": list(range(10)), "ts": pa.array(times, pa.timestamp("us", tz="UTC")), "v": [0] * 10}
    )
    pq.write_table(table, tmp_path / "f.parquet", row_group_size=2)
    source = FileSource(path="f.parquet", timestamp_field="ts")

    def day(d: int) -> int:
        return int((BASE + dt.timedelta(days=d)).timestamp()) * SECOND

    got = offline.scan(source, tmp_path, ["id", "v"], start=day(3), end=day(5)).read_all()
    # Row groups [2, 3] and [4, 5] may hold days 3..5: kept whole; the join ignores day 2.
    assert got.column("id").to_pylist() == [2, 3, 4, 5]
    assert offline.scan(source, tmp_path, ["id"], start=None, end=None).read_all().num_rows == 10


def test_ttl_window_is_inclusive_at_both_ends():
    entities = pa.table(
        {
            "id": [1, 1, 1],
            "ts": [BASE, BASE + dt.timedelta(seconds=10), BASE + dt.timedelta(seconds=11)],
        }
    )
    features = pa.table({"id": [1], "ts": [BASE], "x": [7]})
    kwargs = {
        "entity_keys": ["id"],
        "feature_keys": ["id"],
        "entity_timestamp": "ts",
        "feature_timestamp": "ts",
        "created_timestamp": None,
        "ttl_micros": 10 * SECOND,
        "columns": [("x", "x")],
    }
    assert _join(entities, features, **kwargs) == {"x": [7, 7, None]}


def test_empty_source_and_rows_before_any_data_give_nulls():
    entities = pa.table({"id": [1, 2], "ts": [BASE, BASE]})
    empty = pa.table(
        {
            "id": pa.array([], pa.int64()),
            "ts": pa.array([], pa.timestamp("us")),
            "x": pa.array([], pa.float32()),
        }
    )
    kwargs = {
        "entity_keys": ["id"],
        "feature_keys": ["id"],
        "entity_timestamp": "ts",
        "feature_timestamp": "ts",
        "created_timestamp": None,
        "ttl_micros": None,
        "columns": [("x", "x")],
    }
    assert _join(entities, empty, **kwargs) == {"x": [None, None]}
    later = pa.table({"id": [1], "ts": [BASE + dt.timedelta(days=1)], "x": [1.5]})
    assert _join(entities, later, **kwargs) == {"x": [None, None]}


def test_int_key_against_string_key_is_schema_mismatch():
    entities = pa.table({"id": ["1"], "ts": [BASE]})
    features = pa.table({"id": [1], "ts": [BASE], "x": [1]})
    with pytest.raises(SchemaMismatch):
        _join(
            entities,
            features,
            entity_keys=["id"],
            feature_keys=["id"],
            entity_timestamp="ts",
            feature_timestamp="ts",
            created_timestamp=None,
            ttl_micros=None,
            columns=[("x", "x")],
        )


def test_public_join_keeps_types_and_order():
    entities = pa.table({"id": [2, 1, 2], "ts": [BASE, BASE, BASE]})
    features = pa.table(
        {
            "id": pa.array([1, 2], pa.int16()),
            "ts": [BASE, BASE],
            "v": pa.array([[1.0], [2.0]], pa.list_(pa.float32())),
        }
    )
    out = offline.point_in_time_join(
        entities,
        features,
        entity_keys=["id"],
        feature_keys=["id"],
        entity_timestamp="ts",
        feature_timestamp="ts",
        created_timestamp=None,
        ttl_micros=None,
        columns=[("v", "vec")],
    )
    assert out.column("vec").to_pylist() == [[2.0], [1.0], [2.0]]
    assert out.schema.field("vec").type == pa.list_(pa.float32())


def _tie_join(rows: list[tuple[int, int, int | None, str]], *, with_created: bool, chunks: int):
    """Join one entity row per key at second 10 onto ``(key, event s, created s, value)`` rows."""
    naive = BASE.replace(tzinfo=None)
    columns = {
        "id": pa.array([r[0] for r in rows], pa.int64()),
        "ts": pa.array([naive + dt.timedelta(seconds=r[1]) for r in rows], pa.timestamp("us")),
        "created": pa.array(
            [None if r[2] is None else naive + dt.timedelta(seconds=r[2]) for r in rows],
            pa.timestamp("us"),
        ),
        "x": pa.array([r[3] for r in rows], pa.string()),
    }
    if not with_created:
        del columns["created"]
    table = pa.table(columns)
    if chunks > 1:
        step = -(-len(rows) // chunks)
        table = pa.concat_tables([table.slice(i, step) for i in range(0, len(rows), step)])
        assert table.column("x").num_chunks > 1
    keys = sorted({r[0] for r in rows})
    entities = pa.table({"id": keys, "ts": [BASE + dt.timedelta(seconds=10)] * len(keys)})
    out = _join(
        entities,
        table,
        entity_keys=["id"],
        feature_keys=["id"],
        entity_timestamp="ts",
        feature_timestamp="ts",
        created_timestamp="created" if with_created else None,
        ttl_micros=None,
        columns=[("x", "x")],
    )
    return dict(zip(keys, out["x"], strict=True))


@pytest.mark.parametrize("chunks", [1, 3])
def test_tie_on_event_time_goes_to_greatest_created_time(chunks):
    rows = [
        (1, 5, 2, "created 2"),
        (1, 5, 7, "created 7"),
        (1, 5, 3, "created 3"),
        (2, 5, 7, "created 7"),
        (2, 5, 1, "created 1"),
        # Event time decides before created time: the later event wins whatever its created.
        (3, 4, 9, "earlier event, created 9"),
        (3, 5, 1, "later event, created 1"),
    ]
    assert _tie_join(rows, with_created=True, chunks=chunks) == {
        1: "created 7",
        2: "created 7",
        3: "later event, created 1",
    }


@pytest.mark.parametrize("chunks", [1, 3])
def test_null_created_time_is_older_than_any_real_one(chunks):
    rows = [
        (1, 5, 0, "created 0"),
        (1, 5, None, "null after"),
        (2, 5, None, "null before"),
        (2, 5, 0, "created 0"),
        # Two nulls: a full tie, so the later row wins.
        (3, 5, None, "first null"),
        (3, 5, None, "second null"),
    ]
    assert _tie_join(rows, with_created=True, chunks=chunks) == {
        1: "created 0",
        2: "created 0",
        3: "second null",
    }


@pytest.mark.parametrize("chunks", [1, 3])
def test_full_tie_goes_to_the_later_source_row(chunks):
    rows = [
        (1, 5, 4, "first"),
        (2, 5, 4, "other key"),
        (1, 5, 4, "second"),
        (1, 5, 4, "third"),
        (1, 3, 9, "older event"),
    ]
    assert _tie_join(rows, with_created=True, chunks=chunks) == {1: "third", 2: "other key"}


@pytest.mark.parametrize("chunks", [1, 3])
def test_without_created_column_the_later_source_row_wins(chunks):
    rows = [
        (1, 5, None, "first"),
        (2, 5, None, "only"),
        (1, 5, None, "second"),
        (1, 2, None, "older event"),
        (1, 5, None, "third"),
    ]
    assert _tie_join(rows, with_created=False, chunks=chunks) == {1: "third", 2: "only"}
