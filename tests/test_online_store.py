"""The LMDB online store's Python API: types, inputs, newer-wins, ttl, schema changes, errors,
concurrency across processes and threads, and view administration.

Multi-process workers live in ``tests/online_workers.py`` (spawned children import them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import multiprocessing
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import online_workers
from ferrostore import errors
from ferrostore.features import FieldStatus, OnlineRead, OnlineStore, ViewSchema, WriteSummary
from ferrostore.features.online_store import VALUE_TYPES

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
PRESENT, NULL, NOT_FOUND, EXPIRED = (
    FieldStatus.PRESENT,
    FieldStatus.NULL_VALUE,
    FieldStatus.NOT_FOUND,
    FieldStatus.OUTSIDE_MAX_AGE,
)
TIMEOUT_S = 60


def at(hours: float = 0, **delta: float) -> dt.datetime:
    """``T0`` plus an offset."""
    return T0 + dt.timedelta(hours=hours, **delta)


def micros(when: dt.datetime) -> int:
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def tz_utc(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) and t.unit == "us" and t.tz == "UTC"


@pytest.fixture
def store(tmp_path: Path) -> OnlineStore:
    return OnlineStore(tmp_path / "online")


def simple_view(store: OnlineStore, name: str = "v", **kwargs: Any) -> ViewSchema:
    return store.register_view(name, {"k": "int64"}, {"x": "int64", "s": "string"}, **kwargs)


def write_simple(store: OnlineStore, keys: list[int], xs: list[Any], when: dt.datetime, **kw: Any):
    return store.write(
        "v",
        {
            "k": keys,
            "x": pa.array(xs, pa.int64()),
            "s": [f"s{x}" for x in xs],
            "event_timestamp": [when] * len(keys),
        },
        **kw,
    )


def x_of(store: OnlineStore, key: int, view: str = "v") -> Any:
    return store.read_one(view, [key], ["x"])["x"]


# --------------------------------------------------------------------------------------------
# 1. Round trips of every value type, with nulls; keys
# --------------------------------------------------------------------------------------------

# type name -> (Arrow type written, a value, a second "edge" value); read back unchanged.
SAMPLES: dict[str, tuple[pa.DataType, Any, Any]] = {
    "int32": (pa.int32(), 2**31 - 1, -(2**31)),
    "int64": (pa.int64(), 2**63 - 1, -(2**63)),
    "float32": (pa.float32(), 1.5, -0.0),
    "float64": (pa.float64(), 0.1, -1e300),
    "bool": (pa.bool_(), True, False),
    "string": (pa.string(), "héllo ✓", ""),
    "bytes": (pa.binary(), b"\x00\xffab", b""),
    "timestamp": (
        pa.timestamp("us", tz="UTC"),
        dt.datetime(2023, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # negative micros
    ),
    "list_float32": (pa.list_(pa.float32()), [1.5, -2.25], []),
    "list_float64": (pa.list_(pa.float64()), [0.1, 1e300], []),
    "list_int64": (pa.list_(pa.int64()), [2**63 - 1, -(2**63), 0], []),
    "list_string": (pa.list_(pa.string()), ["a", "", "ü"], []),
}
ARROW_TYPES = {name: arrow_type for name, (arrow_type, _, _) in SAMPLES.items()}


def test_samples_cover_every_value_type() -> None:
    assert set(SAMPLES) == set(VALUE_TYPES)


@pytest.mark.parametrize("type_name", VALUE_TYPES)
def test_round_trip_of_each_type_with_nulls(store: OnlineStore, type_name: str) -> None:
    arrow_type, value, edge = SAMPLES[type_name]
    store.register_view("v", {"k": "int64"}, {"f": type_name})
    times = [at(1), at(2), at(3)]
    data = pa.table(
        {
            "k": pa.array([1, 2, 3], pa.int64()),
            "f": pa.array([value, None, edge], arrow_type),
            "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )
    assert store.write("v", data) == WriteSummary(rows=3, written=3, skipped=0)

    result = store.read({"k": [1, 2, 3, 4]}, ["v"])
    assert isinstance(result, OnlineRead)
    column = result.values.column("v:f")
    assert column.type == ARROW_TYPES[type_name]
    assert column.to_pylist() == [value, None, edge, None]
    assert result.status("v:f") == [PRESENT, NULL, PRESENT, NOT_FOUND]
    assert result.statuses.column("v:f").type == pa.uint8()
    assert result.statuses.column("v:f").to_pylist() == [1, 2, 1, 3]
    ts = result.event_timestamps.column("v")
    assert tz_utc(ts.type)
    assert ts.to_pylist() == [*times, None]

    assert store.read_one("v", [1]) == {"f": value}
    assert store.read_one("v", [2]) == {"f": None}
    assert store.read_one("v", [3]) == {"f": edge}
    assert store.read_one_with_status("v", [1]) == ([value], [PRESENT], micros(at(1)))
    assert store.read_one_with_status("v", [2]) == ([None], [NULL], micros(at(2)))
    assert store.read_one_with_status("v", [3]) == ([edge], [PRESENT], micros(at(3)))
    assert store.read_one_with_status("v", [4]) == ([None], [NOT_FOUND], None)


def test_round_trip_python_types_of_read_one(store: OnlineStore) -> None:
    store.register_view("v", {"k": "int64"}, {t: t for t in VALUE_TYPES})
    row = {t: pa.array([SAMPLES[t][1]], ARROW_TYPES[t]) for t in VALUE_TYPES}
    store.write("v", pa.table({"k": [1], **row, "event_timestamp": [T0]}))
    got = store.read_one("v", [1])
    assert list(got) == list(VALUE_TYPES)  # feature order
    expected_types = {
        "int32": int,
        "int64": int,
        "float32": float,
        "float64": float,
        "bool": bool,
        "string": str,
        "bytes": bytes,
        "timestamp": dt.datetime,
        "list_float32": list,
        "list_float64": list,
        "list_int64": list,
        "list_string": list,
    }
    for name, py_type in expected_types.items():
        assert type(got[name]) is py_type, name
        assert got[name] == SAMPLES[name][1], name
    assert got["timestamp"].utcoffset() == dt.timedelta(0)


def test_all_types_in_one_view_keep_each_null_bit(store: OnlineStore) -> None:
    # 12 features: the null bitmap spans two bytes; each row nulls a different subset.
    store.register_view("v", {"k": "int64"}, {t: t for t in VALUE_TYPES})
    n = len(VALUE_TYPES)
    keys = list(range(n + 1))

    def cell(row: int, col: int) -> Any:
        # Row r (< n) has feature r null; row n has every odd feature null.
        null = col == row if row < n else col % 2 == 1
        return None if null else SAMPLES[VALUE_TYPES[col]][1 + (row % 2)]

    columns = {
        t: pa.array([cell(r, c) for r in keys], ARROW_TYPES[t]) for c, t in enumerate(VALUE_TYPES)
    }
    store.write("v", pa.table({"k": keys, **columns, "event_timestamp": [T0] * len(keys)}))

    result = store.read({"k": keys}, ["v"])
    for c, t in enumerate(VALUE_TYPES):
        expected = [cell(r, c) for r in keys]
        assert result.values.column(f"v:{t}").to_pylist() == expected, t
        assert result.status(f"v:{t}") == [NULL if v is None else PRESENT for v in expected], t
    for r in keys:
        values, statuses, _ = store.read_one_with_status("v", [r])
        assert values == [cell(r, c) for c in range(n)]
        assert statuses == [NULL if v is None else PRESENT for v in values]


def test_read_subset_of_features_in_requested_order(store: OnlineStore) -> None:
    store.register_view("v", {"k": "int64"}, {"a": "int64", "b": "string", "c": "float64"})
    store.write("v", {"k": [1], "a": [1], "b": ["two"], "c": [3.0], "event_timestamp": [T0]})
    result = store.read({"k": [1]}, {"v": ["c", "a"]})
    assert result.values.schema.names == ["v:c", "v:a"]
    assert result.values.to_pylist() == [{"v:c": 3.0, "v:a": 1}]
    assert store.read_one("v", [1], ["c", "a"]) == {"c": 3.0, "a": 1}
    assert store.read_one_with_status("v", [1], ["b"]) == (["two"], [PRESENT], micros(T0))
    assert store.read({"k": [1]}, {"v": None}).values.schema.names == ["v:a", "v:b", "v:c"]


def test_composite_string_and_int32_keys(store: OnlineStore) -> None:
    store.register_view("v", {"user": "string", "slot": "int32"}, {"x": "int64"})
    # Length-prefixed encoding: ("1", 23) and ("12", 3) must not collide, nor "" keys.
    keys = [("a", 1), ("a", 2), ("b", 1), ("1", 23), ("12", 3), ("", -(2**31)), ("ü", 2**31 - 1)]
    store.write(
        "v",
        {
            "user": [u for u, _ in keys],
            "slot": pa.array([s for _, s in keys], pa.int32()),
            "x": list(range(len(keys))),
            "event_timestamp": [T0] * len(keys),
        },
    )
    assert store.count("v") == len(keys)
    for i, (user, slot) in enumerate(keys):
        assert store.read_one("v", [user, slot]) == {"x": i}
        assert store.read_one("v", [user, np.int32(slot)]) == {"x": i}
    # int64 entity columns are cast to the int32 key; order of entity columns is irrelevant.
    entities = {"slot": [s for _, s in keys] + [9], "user": [u for u, _ in keys] + ["a"]}
    result = store.read(entities, ["v"])
    assert result.values.column("v:x").to_pylist() == [*range(len(keys)), None]
    assert result.status("v:x") == [PRESENT] * len(keys) + [NOT_FOUND]
    assert store.read_one("v", ["a", 3])["x"] is None
    assert store.read_one("v", ["b", 2])["x"] is None


def test_int_string_and_bytes_keys_never_collide(store: OnlineStore) -> None:
    store.register_view("by_int", {"id": "int64"}, {"x": "int64"})
    store.register_view("by_str", {"code": "string"}, {"x": "int64"})
    store.register_view("by_bytes", {"raw": "bytes"}, {"x": "int64"})
    store.write("by_int", {"id": [1001], "x": [1], "event_timestamp": [T0]})
    store.write("by_str", {"code": ["1001"], "x": [2], "event_timestamp": [T0]})
    store.write("by_bytes", {"raw": [b"1001"], "x": [3], "event_timestamp": [T0]})

    assert store.read_one("by_int", [1001]) == {"x": 1}
    assert store.read_one("by_str", ["1001"]) == {"x": 2}
    assert store.read_one("by_bytes", [b"1001"]) == {"x": 3}
    entities = {"id": [1001], "code": ["1001"], "raw": [b"1001"]}
    result = store.read(entities, ["by_int", "by_str", "by_bytes"])
    assert result.values.to_pylist() == [{"by_int:x": 1, "by_str:x": 2, "by_bytes:x": 3}]
    assert result.event_timestamps.schema.names == ["by_int", "by_str", "by_bytes"]

    # A value of the other type is refused, never looked up as if it were the same key.
    with pytest.raises(errors.SchemaMismatch, match="1001"):
        store.read_one("by_int", ["1001"])
    with pytest.raises(errors.SchemaMismatch, match="1001"):
        store.read_one("by_str", [1001])
    with pytest.raises(errors.SchemaMismatch, match="'code'"):
        store.read({"code": [1001]}, ["by_str"])
    with pytest.raises(errors.SchemaMismatch, match="'id'"):
        store.read({"id": ["1001"]}, ["by_int"])
    with pytest.raises(errors.SchemaMismatch, match="'id'"):
        store.write("by_int", {"id": ["1001"], "x": [9], "event_timestamp": [T0]})
    assert store.count("by_int") == store.count("by_str") == store.count("by_bytes") == 1


def test_negative_and_extreme_int_keys(store: OnlineStore) -> None:
    store.register_view("v", {"k": "int64"}, {"x": "int64"})
    keys = [-(2**63), -1, 0, 1, 2**63 - 1]
    store.write("v", {"k": keys, "x": list(range(5)), "event_timestamp": [T0] * 5})
    assert [x_of(store, k) for k in keys] == list(range(5))
    assert store.read({"k": keys[::-1]}, ["v"]).values.column("v:x").to_pylist() == [4, 3, 2, 1, 0]


def test_empty_write_and_empty_read(store: OnlineStore) -> None:
    simple_view(store)
    empty = pa.table(
        {
            "k": pa.array([], pa.int64()),
            "x": pa.array([], pa.int64()),
            "s": pa.array([], pa.string()),
            "event_timestamp": pa.array([], pa.timestamp("us")),
        }
    )
    assert store.write("v", empty) == WriteSummary(0, 0, 0)
    assert store.count("v") == 0
    result = store.read({"k": pa.array([], pa.int64())}, ["v"])
    assert result.values.num_rows == result.statuses.num_rows == 0
    assert result.values.schema.names == ["v:x", "v:s"]
    assert result.event_timestamps.num_rows == 0


# --------------------------------------------------------------------------------------------
# 2. Inputs: pyarrow, pandas, polars, dicts
# --------------------------------------------------------------------------------------------

INPUT_KEYS = [1, 2, 3]
INPUT_X = [10, None, 30]
INPUT_S = ["a", None, "c"]
INPUT_TIMES = [dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3, 6)]


def as_input(kind: str, columns: dict[str, list[Any]]) -> Any:
    """``columns`` (python lists; datetimes naive) in one of the accepted input forms."""
    if kind == "dict":
        return columns
    if kind == "table":
        return pa.table(columns)
    if kind == "record_batch":
        return pa.record_batch(columns)
    if kind == "pandas":
        frame = {}
        for name, values in columns.items():
            if values and isinstance(values[0], dt.datetime):
                frame[name] = pd.Series(values).astype("datetime64[ns]")
            elif any(isinstance(v, int) for v in values):
                frame[name] = pd.array(values, dtype="Int64")
            else:
                frame[name] = values
        df = pd.DataFrame(frame)
        df.index = [100 + i for i in range(len(df))]  # a non-default index is dropped
        return df
    if kind == "polars":
        return pl.DataFrame(columns)
    raise AssertionError(kind)


INPUT_KINDS = ["dict", "table", "record_batch", "pandas", "polars"]


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_write_accepts_each_input_form(store: OnlineStore, kind: str) -> None:
    store.register_view("v", {"k": "int64"}, {"x": "int64", "s": "string", "t": "timestamp"})
    data = as_input(
        kind,
        {
            "k": INPUT_KEYS,
            "x": INPUT_X,
            "s": INPUT_S,
            "t": INPUT_TIMES,
            "event_timestamp": INPUT_TIMES,
            "ignored_extra": [7, 8, 9],
        },
    )
    if kind == "pandas":
        assert str(data["event_timestamp"].dtype) == "datetime64[ns]"
    assert store.write("v", data) == WriteSummary(3, 3, 0)
    result = store.read({"k": [1, 2, 3]}, ["v"])
    utc_times = [t.replace(tzinfo=UTC) for t in INPUT_TIMES]  # naive timestamps are UTC
    assert result.values.to_pylist() == [
        {"v:x": x, "v:s": s, "v:t": t} for x, s, t in zip(INPUT_X, INPUT_S, utc_times, strict=True)
    ]
    assert result.event_timestamps.column("v").to_pylist() == utc_times
    assert store.read_one_with_status("v", [2]) == (
        [None, None, utc_times[1]],
        [NULL, NULL, PRESENT],
        micros(utc_times[1]),
    )


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_read_accepts_each_entity_form(store: OnlineStore, kind: str) -> None:
    store.register_view("v", {"user": "string", "slot": "int32"}, {"x": "int64"})
    store.write(
        "v", {"user": ["a", "b"], "slot": [1, 2], "x": [10, 20], "event_timestamp": [T0, T0]}
    )
    entities = as_input(kind, {"user": ["b", "zz", "a"], "slot": [2, 1, 1]})
    result = store.read(entities, ["v"])
    assert result.values.column("v:x").to_pylist() == [20, None, 10]
    assert result.status("v:x") == [PRESENT, NOT_FOUND, PRESENT]
    assert result.event_timestamps.column("v").to_pylist() == [T0, None, T0]


def test_pandas_timestamps_naive_are_utc_and_aware_keep_their_instant(store: OnlineStore) -> None:
    store.register_view("v", {"k": "string"}, {"t": "timestamp"})
    naive = pd.Series(pd.to_datetime(["2024-03-10 12:00:00.123456"])).astype("datetime64[ns]")
    tokyo = naive.dt.tz_localize("Asia/Tokyo")  # 12:00 JST == 03:00 UTC
    eastern = naive.dt.tz_localize("US/Eastern")  # 12:00 EDT == 16:00 UTC
    frame_naive = pd.DataFrame({"k": ["naive"], "t": naive, "event_timestamp": naive})
    frame_aware = pd.DataFrame({"k": ["aware"], "t": tokyo, "event_timestamp": eastern})
    assert str(frame_naive["event_timestamp"].dtype) == "datetime64[ns]"
    assert str(frame_aware["event_timestamp"].dtype) == "datetime64[ns, US/Eastern]"
    store.write("v", frame_naive)
    store.write("v", frame_aware)
    noon = dt.datetime(2024, 3, 10, 12, 0, 0, 123456, tzinfo=UTC)
    assert store.read_one_with_status("v", ["naive"]) == ([noon], [PRESENT], micros(noon))
    assert store.read_one_with_status("v", ["aware"]) == (
        [noon - dt.timedelta(hours=9)],
        [PRESENT],
        micros(noon + dt.timedelta(hours=4)),
    )
    result = store.read(pd.DataFrame({"k": ["aware", "naive"]}), ["v"])
    assert result.values.column("v:t").to_pylist() == [noon - dt.timedelta(hours=9), noon]


def test_python_and_polars_aware_datetimes_keep_their_instant(store: OnlineStore) -> None:
    store.register_view("v", {"k": "int64"}, {"t": "timestamp"})
    paris = dt.datetime(2024, 1, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))  # 11:00 UTC
    store.write("v", {"k": [1], "t": [paris], "event_timestamp": [paris]})
    frame = pl.DataFrame({"k": [2], "t": [dt.datetime(2024, 1, 1, 12)]}).with_columns(
        pl.col("t").dt.replace_time_zone("Asia/Tokyo").alias("t"),
        pl.col("t").dt.replace_time_zone("Asia/Tokyo").alias("event_timestamp"),
    )  # 03:00 UTC
    store.write("v", frame)
    eleven = dt.datetime(2024, 1, 1, 11, tzinfo=UTC)
    three = dt.datetime(2024, 1, 1, 3, tzinfo=UTC)
    assert store.read_one_with_status("v", [1]) == ([eleven], [PRESENT], micros(eleven))
    assert store.read_one_with_status("v", [2]) == ([three], [PRESENT], micros(three))


def test_pandas_categorical_and_polars_list_columns(store: OnlineStore) -> None:
    store.register_view("v", {"k": "string"}, {"tags": "list_string", "emb": "list_float32"})
    frame = pd.DataFrame(
        {
            "k": pd.Categorical(["a", "b"]),
            "tags": [["x", "y"], None],
            "emb": [[0.5, 1.0], []],
            "event_timestamp": [dt.datetime(2024, 1, 1)] * 2,
        }
    )
    store.write("v", frame)
    polars_frame = pl.DataFrame(
        {"k": ["c"], "tags": [["z"]], "emb": [[2.5]], "event_timestamp": [dt.datetime(2024, 1, 1)]}
    )
    store.write("v", polars_frame)
    result = store.read(pl.DataFrame({"k": ["a", "b", "c"]}), ["v"])
    assert result.values.to_pylist() == [
        {"v:tags": ["x", "y"], "v:emb": [0.5, 1.0]},
        {"v:tags": None, "v:emb": []},
        {"v:tags": ["z"], "v:emb": [2.5]},
    ]


def test_multi_chunk_table_is_one_batch(store: OnlineStore) -> None:
    simple_view(store)
    chunks = [
        pa.table({"k": [1, 2], "x": [1, 2], "s": ["a", "b"], "event_timestamp": [T0, T0]}),
        pa.table({"k": [3, 1], "x": [3, 4], "s": ["c", "d"], "event_timestamp": [T0, T0]}),
    ]
    table = pa.concat_tables(chunks)
    assert table.column("k").num_chunks == 2
    # Equal timestamps: the later row (in the second chunk) wins.
    assert store.write("v", table) == WriteSummary(rows=4, written=3, skipped=1)
    entities = pa.concat_tables([pa.table({"k": [1]}), pa.table({"k": [2, 3]})])
    assert store.read(entities, ["v"]).values.column("v:x").to_pylist() == [4, 2, 3]


def test_custom_timestamp_column_name(store: OnlineStore) -> None:
    simple_view(store)
    data = {"k": [1], "x": [1], "s": ["a"], "ts": [at(5)], "event_timestamp": [at(1)]}
    store.write("v", data, timestamp_column="ts")
    assert store.read_one_with_status("v", [1])[2] == micros(at(5))


def test_fixed_size_list_embeddings(store: OnlineStore) -> None:
    store.register_view("v", {"k": "int64"}, {"emb": "list_float32", "ids": "list_int64"})
    emb = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float64)), 3)
    ids = pa.array([[1, 2], [3]], pa.large_list(pa.int32()))
    store.write("v", pa.table({"k": [1, 2], "emb": emb, "ids": ids, "event_timestamp": [T0, T0]}))
    assert store.read_one("v", [2]) == {"emb": [3.0, 4.0, 5.0], "ids": [3]}
    assert store.read({"k": [1]}, ["v"]).values.to_pylist() == [
        {"v:emb": [0.0, 1.0, 2.0], "v:ids": [1, 2]}
    ]


def test_event_timestamp_of_other_units_and_dates(store: OnlineStore) -> None:
    simple_view(store)
    seconds = pa.array([micros(at(1)) // 1_000_000], pa.timestamp("s"))
    store.write("v", pa.table({"k": [1], "x": [1], "s": ["a"], "event_timestamp": seconds}))
    day = pa.array([dt.date(2024, 1, 2)], pa.date32())
    store.write("v", pa.table({"k": [2], "x": [2], "s": ["b"], "event_timestamp": day}))
    assert store.read_one_with_status("v", [1])[2] == micros(at(1))
    assert store.read_one_with_status("v", [2])[2] == micros(at(24))


# --------------------------------------------------------------------------------------------
# 3. Newer wins
# --------------------------------------------------------------------------------------------


def test_older_row_never_overwrites_newer_in_store(store: OnlineStore) -> None:
    simple_view(store)
    assert write_simple(store, [1, 2], [20, 20], at(2)) == WriteSummary(2, 2, 0)
    assert write_simple(store, [1, 2, 3], [10, 10, 10], at(1)) == WriteSummary(3, 1, 2)
    assert [x_of(store, k) for k in (1, 2, 3)] == [20, 20, 10]
    assert store.read_one_with_status("v", [1]) == ([20, "s20"], [PRESENT, PRESENT], micros(at(2)))
    assert write_simple(store, [1], [30], at(3)) == WriteSummary(1, 1, 0)
    assert x_of(store, 1) == 30


def test_newest_row_of_a_batch_wins_whatever_its_position(store: OnlineStore) -> None:
    simple_view(store)
    data = {
        "k": [1, 1, 1, 2, 2],
        "x": [1, 3, 2, 5, 4],
        "s": ["a", "c", "b", "e", "d"],
        "event_timestamp": [at(1), at(3), at(2), at(5), at(4)],
    }
    assert store.write("v", data) == WriteSummary(rows=5, written=2, skipped=3)
    assert store.read_one("v", [1]) == {"x": 3, "s": "c"}
    assert store.read_one("v", [2]) == {"x": 5, "s": "e"}
    assert store.read({"k": [1, 2]}, ["v"]).event_timestamps.column("v").to_pylist() == [
        at(3),
        at(5),
    ]


def test_equal_timestamps_later_write_wins(store: OnlineStore) -> None:
    simple_view(store)
    write_simple(store, [1], [1], T0)
    assert write_simple(store, [1], [2], T0) == WriteSummary(1, 1, 0)
    assert x_of(store, 1) == 2
    # Within one batch, the later row wins a tie.
    assert write_simple(store, [1, 1, 1], [3, 4, 5], T0) == WriteSummary(3, 1, 2)
    assert x_of(store, 1) == 5


def test_created_timestamp_breaks_ties_within_a_batch(store: OnlineStore) -> None:
    simple_view(store)
    data = {
        "k": [1, 1, 1, 2],
        "x": [1, 2, 3, 4],
        "s": ["a", "b", "c", "d"],
        "event_timestamp": [T0, T0, T0, T0],
        "created": [at(9), at(7), None, at(1)],
    }
    assert store.write("v", data, created_column="created") == WriteSummary(4, 2, 2)
    assert x_of(store, 1) == 1  # largest created timestamp, although first in the batch
    # Without created_column the column is ignored: the last row wins.
    assert store.write("v", {**data, "k": [5, 5, 5, 6]}) == WriteSummary(4, 2, 2)
    assert x_of(store, 5) == 3


def test_created_timestamp_breaks_ties_against_the_store(store: OnlineStore) -> None:
    simple_view(store)

    def write(x: int, event: dt.datetime, created: dt.datetime | None) -> WriteSummary:
        data: dict[str, list[Any]] = {"k": [1], "x": [x], "s": ["s"], "event_timestamp": [event]}
        if created is None:
            return store.write("v", data)
        return store.write("v", {**data, "created": [created]}, created_column="created")

    assert write(1, at(1), at(5)) == WriteSummary(1, 1, 0)
    assert write(2, at(1), at(4)) == WriteSummary(1, 0, 1)  # older created: skipped
    assert x_of(store, 1) == 1
    assert write(3, at(1), at(5)) == WriteSummary(1, 1, 0)  # full tie: later write wins
    assert x_of(store, 1) == 3
    # No created column counts as the smallest created time.
    assert write(4, at(1), None) == WriteSummary(1, 0, 1)
    assert x_of(store, 1) == 3
    # A newer event time wins whatever the created time.
    assert write(5, at(2), at(0)) == WriteSummary(1, 1, 0)
    assert x_of(store, 1) == 5
    assert write(6, at(1), at(99)) == WriteSummary(1, 0, 1)
    assert x_of(store, 1) == 5


def test_write_summary_counts_a_mixed_batch(store: OnlineStore) -> None:
    simple_view(store)
    write_simple(store, [1, 2], [1, 2], at(5))
    data = {
        "k": [1, 2, 3, 3, 4, 1],
        "x": [10, 20, 30, 31, 40, 11],
        "s": list("abcdef"),
        "event_timestamp": [at(6), at(4), at(1), at(2), at(1), at(7)],
    }
    # key 1: row 6 (newest) written, row 1 skipped in batch; key 2: older than the store;
    # key 3: row 4 written, row 3 skipped; key 4: new.
    assert store.write("v", data) == WriteSummary(rows=6, written=3, skipped=3)
    assert [x_of(store, k) for k in (1, 2, 3, 4)] == [11, 2, 31, 40]
    assert store.count("v") == 4


def test_write_summary_is_frozen() -> None:
    summary = WriteSummary(1, 1, 0)
    with pytest.raises(AttributeError):
        summary.rows = 2  # type: ignore[misc]


def chunk(keys: list[int], xs: list[int], when: dt.datetime) -> dict[str, Any]:
    return {
        "k": keys,
        "x": pa.array(xs, pa.int64()),
        "s": ["s" * x for x in xs],  # a replaced row changes size
        "event_timestamp": [when] * len(keys),
    }


def test_write_chunks_is_one_newer_wins_write(store: OnlineStore) -> None:
    simple_view(store)
    write_simple(store, [1, 2, 3], [10, 20, 30], at(1))
    chunks = [
        chunk([2, 4], [21, 40], at(2)),  # newer for 2, new 4
        pl.DataFrame({"k": [1], "x": [11], "s": ["s"], "event_timestamp": [at(0)]}),  # older
        pd.DataFrame({"k": [4, 5], "x": [41, 50], "s": ["a", "b"], "event_timestamp": at(3)}),
    ]
    summary = store.write_chunks("v", iter(chunks))
    assert summary == WriteSummary(rows=5, written=4, skipped=1)
    assert [x_of(store, k) for k in (1, 2, 3, 4, 5)] == [10, 21, 30, 41, 50]
    assert store.read_one("v", [2], ["s"]) == {"s": "s" * 21}
    assert store.write_chunks("v", []) == WriteSummary(rows=0, written=0, skipped=0)


def test_write_chunks_that_fail_write_nothing(store: OnlineStore) -> None:
    simple_view(store)
    write_simple(store, [1], [10], at(1))

    def failing_source() -> Iterator[dict[str, Any]]:
        yield chunk([1, 2], [11, 20], at(2))
        raise OSError("the source went away")

    with pytest.raises(OSError, match="the source went away"):
        store.write_chunks("v", failing_source())
    bad = [chunk([1, 2], [11, 20], at(2)), {"k": [3], "x": [1], "event_timestamp": [at(2)]}]
    with pytest.raises(errors.SchemaMismatch, match="'s'"):
        store.write_chunks("v", bad)
    with pytest.raises(errors.NotFound, match="nope"):
        store.write_chunks("nope", [chunk([1], [1], at(2))])
    with pytest.raises(TypeError):
        store.write_chunks("v", 42)  # type: ignore[arg-type]
    assert store.count("v") == 1 and x_of(store, 1) == 10


# --------------------------------------------------------------------------------------------
# 4. ttl
# --------------------------------------------------------------------------------------------


def test_ttl_expires_values_measured_against_now(store: OnlineStore) -> None:
    schema = simple_view(store, ttl=dt.timedelta(hours=1))
    assert schema.ttl == dt.timedelta(hours=1)
    write_simple(store, [1], [7], T0)
    store.write(
        "v", {"k": [2], "x": pa.array([None], pa.int64()), "s": [None], "event_timestamp": [T0]}
    )

    edge = at(1)  # exactly ttl old: still valid
    result = store.read({"k": [1, 2, 3]}, ["v"], now=edge)
    assert result.values.column("v:x").to_pylist() == [7, None, None]
    assert result.status("v:x") == [PRESENT, NULL, NOT_FOUND]
    assert store.read_one("v", [1], now=edge) == {"x": 7, "s": "s7"}

    late = at(1, microseconds=1)
    result = store.read({"k": [1, 2, 3]}, ["v"], now=late)
    assert result.values.column("v:x").to_pylist() == [None, None, None]
    assert result.values.column("v:s").to_pylist() == [None, None, None]
    assert result.status("v:x") == [EXPIRED, EXPIRED, NOT_FOUND]
    assert result.status("v:s") == [EXPIRED, EXPIRED, NOT_FOUND]
    # The event time is still reported for expired rows.
    assert result.event_timestamps.column("v").to_pylist() == [T0, T0, None]
    assert store.read_one("v", [1], now=late) == {"x": None, "s": None}
    assert store.read_one_with_status("v", [1], now=late) == (
        [None, None],
        [EXPIRED, EXPIRED],
        micros(T0),
    )
    # Rows from the future are not expired; data is still stored.
    assert store.read_one("v", [1], now=at(-5)) == {"x": 7, "s": "s7"}
    assert store.count("v") == 2


def test_ttl_now_naive_is_utc_and_aware_is_converted(store: OnlineStore) -> None:
    simple_view(store, ttl=3600)
    write_simple(store, [1], [7], T0)
    naive_late = dt.datetime(2024, 1, 1, 1, 0, 0, 1)
    assert store.read_one_with_status("v", [1], now=naive_late)[1] == [EXPIRED, EXPIRED]
    assert store.read_one_with_status("v", [1], now=naive_late.replace(microsecond=0))[1] == [
        PRESENT,
        PRESENT,
    ]
    # 02:00 in Paris (UTC+1) is 01:00 UTC: exactly ttl old, still valid.
    paris = dt.datetime(2024, 1, 1, 2, tzinfo=ZoneInfo("Europe/Paris"))
    assert store.read({"k": [1]}, ["v"], now=paris).status("v:x") == [PRESENT]
    paris_late = paris + dt.timedelta(microseconds=1)
    assert store.read({"k": [1]}, ["v"], now=paris_late).status("v:x") == [EXPIRED]


def test_ttl_default_now_is_the_current_time(store: OnlineStore) -> None:
    simple_view(store, ttl=dt.timedelta(days=1))
    write_simple(store, [1], [1], T0)  # 2024: long expired
    write_simple(store, [2], [2], dt.datetime.now(UTC))
    assert store.read({"k": [1, 2]}, ["v"]).status("v:x") == [EXPIRED, PRESENT]
    assert store.read_one("v", [1]) == {"x": None, "s": None}
    assert store.read_one("v", [2]) == {"x": 2, "s": "s2"}


@pytest.mark.parametrize("ttl", [None, 0, dt.timedelta(0)])
def test_no_ttl_never_expires(store: OnlineStore, ttl: Any) -> None:
    assert simple_view(store, ttl=ttl).ttl is None
    write_simple(store, [1], [1], dt.datetime(1970, 1, 1, tzinfo=UTC))
    far = dt.datetime(9999, 12, 31, tzinfo=UTC)
    assert store.read({"k": [1]}, ["v"], now=far).status("v:x") == [PRESENT]
    assert store.read_one("v", [1], now=far) == {"x": 1, "s": "s1"}


def test_ttl_in_seconds_and_fractions(store: OnlineStore) -> None:
    assert simple_view(store, ttl=1.5).ttl == dt.timedelta(seconds=1, microseconds=500_000)
    write_simple(store, [1], [1], T0)
    assert store.read_one("v", [1], now=at(seconds=1.5))["x"] == 1
    assert store.read_one("v", [1], now=at(seconds=1.5, microseconds=1))["x"] is None


def test_changing_ttl_keeps_version_and_data(store: OnlineStore) -> None:
    simple_view(store)
    write_simple(store, [1, 2], [1, 2], T0)
    later = at(48)
    assert store.read({"k": [1, 2]}, ["v"], now=later).status("v:x") == [PRESENT, PRESENT]

    schema = simple_view(store, ttl=dt.timedelta(days=1))
    assert (schema.version, schema.ttl) == (1, dt.timedelta(days=1))
    assert store.view("v") == schema
    assert store.count("v") == 2
    assert store.read({"k": [1, 2]}, ["v"], now=later).status("v:x") == [EXPIRED, EXPIRED]
    assert store.read_one("v", [1], now=at(1)) == {"x": 1, "s": "s1"}

    schema = simple_view(store, ttl=None)
    assert (schema.version, schema.ttl) == (1, None)
    assert store.read({"k": [1, 2]}, ["v"], now=later).values.column("v:x").to_pylist() == [1, 2]


# --------------------------------------------------------------------------------------------
# 5. Schema changes
# --------------------------------------------------------------------------------------------

BASE_KEYS = {"k": "int64"}
BASE_FEATURES = {"x": "int64", "s": "string"}
CHANGED_LAYOUTS = {
    "feature added": (BASE_KEYS, {**BASE_FEATURES, "y": "float64"}),
    "feature dropped": (BASE_KEYS, {"x": "int64"}),
    "feature type changed": (BASE_KEYS, {"x": "int32", "s": "string"}),
    "feature renamed": (BASE_KEYS, {"x": "int64", "t": "string"}),
    "features reordered": (BASE_KEYS, {"s": "string", "x": "int64"}),
    "key type changed": ({"k": "string"}, BASE_FEATURES),
    "key added": ({"k": "int64", "k2": "int32"}, BASE_FEATURES),
}


def snapshot(store: OnlineStore) -> tuple[Any, ...]:
    """Every view, its row count and all its stored values (keys 0..99)."""
    views = store.views()
    rows = {}
    for schema in views:
        if [t for _, t in schema.join_keys] == ["int64"]:
            key = schema.join_keys[0][0]
            result = store.read({key: list(range(-1, 100))}, [schema.name], now=T0)
            rows[schema.name] = (
                result.values.to_pylist(),
                result.statuses.to_pylist(),
                result.event_timestamps.to_pylist(),
            )
    return views, {s.name: store.count(s.name) for s in views}, rows


@pytest.mark.parametrize("change", list(CHANGED_LAYOUTS))
def test_schema_change_is_refused_and_changes_nothing(store: OnlineStore, change: str) -> None:
    simple_view(store, ttl=3600)
    write_simple(store, [1, 2], [1, 2], T0)
    before = snapshot(store)
    keys, features = CHANGED_LAYOUTS[change]
    with pytest.raises(errors.SchemaMismatch, match="'v'") as info:
        store.register_view("v", keys, features, ttl=60)
    assert "version 1" in str(info.value)
    assert snapshot(store) == before
    assert store.view("v").ttl == dt.timedelta(hours=1)  # the ttl was not changed either
    assert write_simple(store, [3], [3], T0) == WriteSummary(1, 1, 0)  # old layout still works


@pytest.mark.parametrize("change", list(CHANGED_LAYOUTS))
def test_new_version_replaces_the_layout_and_deletes_old_rows(
    store: OnlineStore, change: str
) -> None:
    simple_view(store)
    write_simple(store, [1, 2], [1, 2], T0)
    store.register_view("other", {"k": "int64"}, {"x": "int64"})
    store.write("other", {"k": [1], "x": [5], "event_timestamp": [T0]})

    keys, features = CHANGED_LAYOUTS[change]
    schema = store.register_view("v", keys, features, on_schema_change="new_version")
    assert schema.version == 2
    assert schema.join_keys == tuple(keys.items())
    assert schema.features == tuple(features.items())
    assert store.view("v") == schema
    assert store.count("v") == 0
    entity = {name: ["1"] if t == "string" else [1] for name, t in keys.items()}
    assert set(store.read(entity, ["v"]).status(f"v:{next(iter(features))}")) == {NOT_FOUND}
    # The other view is untouched.
    assert store.count("other") == 1 and x_of(store, 1, "other") == 5
    # Rows of the new layout are written and read.
    row = {name: pa.array([None], ARROW_TYPES[t]) for name, t in features.items()}
    first = next(iter(features))
    row[first] = pa.array([SAMPLES[features[first]][1]], ARROW_TYPES[features[first]])
    assert store.write("v", pa.table({**entity, **row, "event_timestamp": [T0]})).written == 1
    assert store.count("v") == 1
    assert store.read(entity, ["v"]).values.column(f"v:{first}").to_pylist() == [
        SAMPLES[features[first]][1]
    ]
    # Registering the next change bumps the version again.
    assert simple_view(store, on_schema_change="new_version").version == 3
    assert store.count("v") == 0


@pytest.mark.parametrize("on_schema_change", ["error", "new_version"])
def test_registering_the_same_layout_is_a_no_op(store: OnlineStore, on_schema_change: str) -> None:
    first = simple_view(store)
    write_simple(store, [1, 2], [1, 2], T0)
    again = store.register_view(
        "v", [("k", "int64")], [("x", "int64"), ("s", "string")], on_schema_change=on_schema_change
    )
    assert again == first
    assert again.version == 1
    assert store.count("v") == 2
    assert [x_of(store, 1), x_of(store, 2)] == [1, 2]


def test_view_schema_fields(store: OnlineStore) -> None:
    schema = store.register_view(
        "v", {"user": "string", "slot": "int32"}, [("a", "list_string"), ("b", "bytes")], ttl=90
    )
    assert schema == ViewSchema(
        name="v",
        version=1,
        join_keys=(("user", "string"), ("slot", "int32")),
        features=(("a", "list_string"), ("b", "bytes")),
        ttl=dt.timedelta(seconds=90),
    )


# --------------------------------------------------------------------------------------------
# 6. Bad input: specific errors naming the value, nothing changed
# --------------------------------------------------------------------------------------------


@pytest.fixture
def filled(store: OnlineStore) -> OnlineStore:
    """A store with view ``v`` (k int64 -> x int64, s string) holding keys 1 and 2."""
    simple_view(store)
    write_simple(store, [1, 2], [1, 2], T0)
    store.register_view("narrow", {"k": "int64"}, {"n": "int32", "xs": "list_int64"})
    store.write("narrow", {"k": [1], "n": [5], "xs": [[1]], "event_timestamp": [T0]})
    return store


def good_row(**override: Any) -> dict[str, Any]:
    """Two rows for view ``v``: key 3 (new) and key 1 (newer than stored)."""
    row: dict[str, Any] = {
        "k": [3, 1],
        "x": [3, 10],
        "s": ["c", "z"],
        "event_timestamp": [at(1), at(1)],
    }
    row.update(override)
    return {name: value for name, value in row.items() if value is not None}


BAD_WRITES: dict[str, tuple[str, dict[str, Any], dict[str, Any], type[Exception], list[str]]] = {
    # name: (view, data, write kwargs, error, words the message must contain)
    "string for int": ("v", good_row(x=["3", "10"]), {}, errors.SchemaMismatch, ["'x'", "int64"]),
    "float for int": ("v", good_row(x=[3.5, 10.0]), {}, errors.SchemaMismatch, ["'x'", "int64"]),
    "int for string": ("v", good_row(s=[1, 2]), {}, errors.SchemaMismatch, ["'s'", "string"]),
    "missing key": ("v", good_row(k=None), {}, errors.SchemaMismatch, ["'k'", "missing"]),
    "missing feature": ("v", good_row(s=None), {}, errors.SchemaMismatch, ["'s'", "missing"]),
    "missing timestamp": (
        "v", good_row(event_timestamp=None), {}, errors.SchemaMismatch,
        ["'event_timestamp'", "missing"],
    ),
    "missing custom timestamp": (
        "v", good_row(), {"timestamp_column": "ts"}, errors.SchemaMismatch, ["'ts'", "missing"]
    ),
    "timestamp of strings": (
        "v", good_row(event_timestamp=["2024-01-01", "2024-01-02"]), {}, errors.SchemaMismatch,
        ["'event_timestamp'", "timestamp"],
    ),
    "null key": ("v", good_row(k=[3, None]), {}, errors.SchemaMismatch, ["'k'", "null"]),
    "null timestamp": (
        "v", good_row(event_timestamp=[at(1), None]), {}, errors.SchemaMismatch,
        ["'event_timestamp'", "null"],
    ),
    "int32 overflow": (
        "narrow", {"k": [3, 1], "n": [1, 2**40], "xs": [[1], [2]], "event_timestamp": [T0, T0]},
        {}, errors.SchemaMismatch, ["'n'", "int32", str(2**40)],
    ),
    "null in list": (
        "narrow", {"k": [3, 1], "n": [1, 2], "xs": [[1], [2, None]], "event_timestamp": [T0, T0]},
        {}, errors.SchemaMismatch, ["'xs'", "null"],
    ),
    "unknown view": ("nope", good_row(), {}, errors.NotFound, ["'nope'"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_WRITES))
def test_bad_write_raises_and_writes_nothing(filled: OnlineStore, case: str) -> None:
    view, data, kwargs, error, words = BAD_WRITES[case]
    before = snapshot(filled)
    with pytest.raises(error) as info:
        filled.write(view, data, **kwargs)
    assert snapshot(filled) == before
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_too_long_key_is_refused_and_writes_nothing(store: OnlineStore) -> None:
    store.register_view("v", {"k": "string"}, {"x": "int64"})
    long_key = "k" * 600
    with pytest.raises(errors.InvalidArgument, match="bytes long"):
        store.write("v", {"k": ["ok", long_key], "x": [1, 2], "event_timestamp": [T0, T0]})
    assert store.count("v") == 0
    # Reading a key that long finds nothing rather than failing.
    assert store.read({"k": [long_key]}, ["v"]).status("v:x") == [NOT_FOUND]
    assert store.read_one_with_status("v", [long_key]) == ([None], [NOT_FOUND], None)


@pytest.mark.parametrize(
    "data",
    [[{"k": 1}], None, "k,x\n1,2", 42, {"k": [1, 2], "x": [1]}],
    ids=["list", "none", "str", "int", "ragged dict"],
)
def test_invalid_data_type_raises_invalid_argument(filled: OnlineStore, data: Any) -> None:
    before = snapshot(filled)
    with pytest.raises(errors.InvalidArgument) as info:
        filled.write("v", data)
    message = str(info.value)
    assert type(data).__name__ in message or "length" in message
    with pytest.raises(errors.InvalidArgument):
        filled.read(data, ["v"])
    assert snapshot(filled) == before


def test_unconvertible_dataframe_raises_invalid_argument(filled: OnlineStore) -> None:
    # An object column mixing ints and strings cannot become Arrow: like the same data
    # given as a dict, it must raise InvalidArgument naming the column, not a pyarrow error.
    mixed = {"k": [3, 4], "x": [3, 4], "s": [1, "b"], "event_timestamp": [T0, T0]}
    with pytest.raises(errors.InvalidArgument):
        filled.write("v", mixed)
    before = snapshot(filled)
    with pytest.raises(errors.InvalidArgument, match="column s"):
        filled.write("v", pd.DataFrame(mixed))
    with pytest.raises(errors.InvalidArgument, match="column k"):
        filled.read(pd.DataFrame({"k": [1, "a"]}), ["v"])
    assert snapshot(filled) == before


UNKNOWN_VIEW_CALLS: dict[str, Callable[[OnlineStore], Any]] = {
    "write": lambda s: s.write("nope", good_row()),
    "read": lambda s: s.read({"k": [1]}, ["v", "nope"]),
    "read mapping": lambda s: s.read({"k": [1]}, {"nope": None}),
    "read_one": lambda s: s.read_one("nope", [1]),
    "read_one_with_status": lambda s: s.read_one_with_status("nope", [1]),
    "count": lambda s: s.count("nope"),
    "clear_view": lambda s: s.clear_view("nope"),
    "delete_view": lambda s: s.delete_view("nope"),
    "view": lambda s: s.view("nope"),
}


@pytest.mark.parametrize("call", list(UNKNOWN_VIEW_CALLS))
def test_unknown_view_everywhere(filled: OnlineStore, call: str) -> None:
    before = snapshot(filled)
    with pytest.raises(errors.NotFound, match="'nope'"):
        UNKNOWN_VIEW_CALLS[call](filled)
    assert snapshot(filled) == before


def test_unknown_feature(filled: OnlineStore) -> None:
    with pytest.raises(errors.NotFound, match=r"'nope'.*'v'"):
        filled.read({"k": [1]}, {"v": ["x", "nope"]})
    with pytest.raises(errors.NotFound, match="'nope'"):
        filled.read_one("v", [1], ["nope"])
    with pytest.raises(errors.NotFound, match="'nope'"):
        filled.read_one_with_status("v", [1], ["x", "nope"])


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ([], ["got 0 key values"]),
        ([1, 2], ["got 2 key values"]),
        ([1.5], ["1.5", "float"]),
        ([1.0], ["1.0", "float"]),
        ([True], ["True", "bool"]),
        ([None], ["None"]),
        (["1"], ["'k'", "int64", "1"]),
        ([b"1"], ["'k'", "int64"]),
    ],
    ids=["no key", "two keys", "float", "integral float", "bool", "none", "str", "bytes"],
)
def test_read_one_with_bad_key(filled: OnlineStore, key: list[Any], words: list[str]) -> None:
    for read in (filled.read_one, filled.read_one_with_status):
        with pytest.raises(errors.SchemaMismatch) as info:
            read("v", key)
        for word in words:
            assert word in str(info.value), (word, str(info.value))


def test_read_one_int32_key_out_of_range(store: OnlineStore) -> None:
    store.register_view("v", {"k": "int32"}, {"x": "int64"})
    with pytest.raises(errors.SchemaMismatch, match=f"{2**31}.*int32"):
        store.read_one("v", [2**31])


def test_read_with_bad_entities(filled: OnlineStore) -> None:
    with pytest.raises(errors.SchemaMismatch, match=r"'k'.*null"):
        filled.read({"k": [1, None]}, ["v"])
    with pytest.raises(errors.SchemaMismatch, match=r"'k'.*missing"):
        filled.read({"key": [1]}, ["v"])
    with pytest.raises(errors.SchemaMismatch, match="'k'"):
        filled.read({"k": [1.5]}, ["v"])
    with pytest.raises(errors.InvalidArgument, match="'v'"):
        filled.read({"k": [1]}, "v")
    with pytest.raises(errors.InvalidArgument, match="now="):
        filled.read({"k": [1]}, ["v"], now=dt.date(2024, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidArgument, match="now="):
        filled.read_one("v", [1], now="2024-01-01")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("keys", "features", "words"),
    [
        ({"k": "int64"}, {"x": "float"}, ["'float'", "int64"]),
        ({"k": "integer"}, {"x": "int64"}, ["'integer'"]),
        ({"k": "float64"}, {"x": "int64"}, ["'k'", "float64"]),
        ({"k": "list_int64"}, {"x": "int64"}, ["'k'", "list_int64"]),
        ({}, {"x": "int64"}, ["no join keys"]),
        ({"k": "int64"}, {"k": "int64"}, ["'k'", "twice"]),
        ({"a:b": "int64"}, {"x": "int64"}, ["a:b"]),
        ({"k": "int64"}, {"": "int64"}, ['""']),
        ([("k",)], {"x": "int64"}, ["('k',)"]),
        ({"k": "int64"}, [("x", 1)], ["('x', 1)"]),
    ],
    ids=[
        "unknown feature type",
        "unknown key type",
        "float key",
        "list key",
        "no keys",
        "duplicate",
        "colon",
        "empty name",
        "short pair",
        "non-string type",
    ],
)
def test_invalid_view_definition(
    store: OnlineStore, keys: Any, features: Any, words: list[str]
) -> None:
    simple_view(store)
    before = snapshot(store)
    for name in ("v", "new"):
        with pytest.raises(errors.InvalidArgument) as info:
            store.register_view(name, keys, features)
        for word in words:
            assert word in str(info.value), (word, str(info.value))
    assert snapshot(store) == before


def test_invalid_view_name(store: OnlineStore) -> None:
    for name in ("", "a:b", "tab\there", "x" * 256):
        with pytest.raises(errors.InvalidArgument, match="invalid view name"):
            store.register_view(name, {"k": "int64"}, {"x": "int64"})
    assert store.views() == []


@pytest.mark.parametrize(
    "ttl",
    [-1, dt.timedelta(seconds=-1), "1h", True, [1], math.nan, math.inf, 1e300, dt.timedelta.max],
    ids=[
        "negative",
        "negative timedelta",
        "str",
        "bool",
        "list",
        "nan",
        "inf",
        "huge float",
        "timedelta max",
    ],
)
def test_invalid_ttl(store: OnlineStore, ttl: Any) -> None:
    simple_view(store, ttl=60)
    before = snapshot(store)
    for name in ("v", "new"):
        with pytest.raises(errors.InvalidArgument, match="ttl"):
            simple_view(store, name, ttl=ttl)
    assert snapshot(store) == before


@pytest.mark.parametrize("value", ["replace", "", "ERROR", "new-version"])
def test_invalid_on_schema_change(store: OnlineStore, value: str) -> None:
    simple_view(store)
    write_simple(store, [1], [1], T0)
    before = snapshot(store)
    for keys in ({"k": "int64"}, {"k": "string"}):
        with pytest.raises(errors.InvalidArgument, match=re.escape(f'on_schema_change="{value}"')):
            store.register_view("v", keys, {"x": "int64"}, on_schema_change=value)
    with pytest.raises(errors.InvalidArgument, match="on_schema_change"):
        store.register_view("new", {"k": "int64"}, {"x": "int64"}, on_schema_change=value)
    assert snapshot(store) == before


def test_error_classes_are_the_documented_hierarchy() -> None:
    assert issubclass(errors.StorageFull, errors.StorageError)
    assert issubclass(errors.StorageError, OSError)
    assert issubclass(errors.SchemaMismatch, TypeError)
    assert issubclass(errors.InvalidArgument, ValueError)
    for cls in (
        errors.NotFound,
        errors.SchemaMismatch,
        errors.InvalidArgument,
        errors.StorageError,
    ):
        assert issubclass(cls, errors.FerrostoreError)


# ---- storage errors --------------------------------------------------------------------------


def test_store_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a store")
    with pytest.raises(errors.StorageError, match=re.escape(str(path))):
        OnlineStore(path)
    assert path.read_text() == "not a store"


def test_store_path_under_a_file(tmp_path: Path) -> None:
    parent = tmp_path / "file"
    parent.write_text("x")
    with pytest.raises(errors.StorageError, match=re.escape(str(parent / "store"))):
        OnlineStore(parent / "store")


def test_store_in_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        # chmod does not deny root; an unusable parent (a file) fails creation instead.
        (folder / "blocker").write_text("x")
        target = folder / "blocker" / "store"
    else:
        folder.chmod(0o555)
        target = folder / "store"
    try:
        with pytest.raises(errors.StorageError, match=re.escape(str(target))):
            OnlineStore(target)
    finally:
        folder.chmod(0o755)
    assert not target.exists()


def test_existing_store_that_cannot_be_opened_for_writing(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    first = OnlineStore(folder)
    simple_view(first)
    del first  # closes the environment: the next open is a real one
    if os.geteuid() == 0:
        # chmod does not deny root: make the lock file unusable instead.
        (folder / "lock.mdb").unlink()
        (folder / "lock.mdb").mkdir()
    else:
        for name in ("data.mdb", "lock.mdb"):
            (folder / name).chmod(0o444)
        folder.chmod(0o555)
    try:
        with pytest.raises(errors.StorageError, match=re.escape(str(folder))):
            OnlineStore(folder)
    finally:
        folder.chmod(0o755)


def test_data_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "data.mdb").mkdir()
    with pytest.raises(errors.StorageError, match=re.escape(str(tmp_path))):
        OnlineStore(tmp_path)


def test_data_file_that_is_not_lmdb(tmp_path: Path) -> None:
    (tmp_path / "data.mdb").write_bytes(b"garbage!" * 2048)
    with pytest.raises(errors.StorageError, match=re.escape(str(tmp_path))):
        OnlineStore(tmp_path)
    assert (tmp_path / "data.mdb").read_bytes() == b"garbage!" * 2048


@pytest.mark.parametrize("map_size", [4097, 1, 0, 4096 * 3 + 1, -4096, 2**64, 4096.0], ids=str)
def test_map_size_not_a_positive_multiple_of_4096(tmp_path: Path, map_size: Any) -> None:
    with pytest.raises(errors.InvalidArgument, match="map_size"):
        OnlineStore(tmp_path / "s", map_size=map_size)


@pytest.mark.parametrize("cache_bytes", [-1, 2**63, 1.5, "1", True], ids=repr)
def test_cache_bytes_not_a_size(tmp_path: Path, cache_bytes: Any) -> None:
    with pytest.raises(errors.InvalidArgument, match="cache_bytes"):
        OnlineStore(tmp_path / "s", cache_bytes=cache_bytes)


def test_preload_keeps_views_in_memory_and_reads_stay_the_same(tmp_path: Path) -> None:
    store = OnlineStore(tmp_path / "s", cache_bytes=0)
    simple_view(store)
    store.register_view("empty", {"k": "int64"}, {"x": "int64"})
    write_simple(store, list(range(50)), list(range(50)), T0)
    entities = {"k": list(range(60))}
    from_lmdb = store.read(entities, ["v"])
    assert store.preload() == {"empty": False, "v": False}  # no budget
    assert store.cache_bytes_used == 0

    store = OnlineStore(tmp_path / "s", cache_bytes=1 << 20)
    assert store.preload() == {"empty": True, "v": True}
    assert store.cache_bytes_used > 0
    in_memory = store.read(entities, ["v"])
    assert in_memory.values.equals(from_lmdb.values)
    assert in_memory.statuses.equals(from_lmdb.statuses)
    with pytest.raises(errors.NotFound, match="nope"):
        store.preload(["nope"])


def test_a_view_in_memory_sees_the_writes_of_another_process(tmp_path: Path) -> None:
    path, n = str(tmp_path / "s"), 500
    store = OnlineStore(path)
    store.register_view("v", {"k": "int64"}, {"x": "int64"})
    store.write("v", online_workers.batch_table(np.arange(n), 0, 0))
    assert store.preload(["v"]) == {"v": True}
    entities = {"k": list(range(n))}

    def values() -> set[Any]:
        return set(store.read(entities, ["v"]).values.column("v:x").to_pylist())

    assert values() == {0}
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    for value in (1, 2):
        with processes() as procs:
            procs.append(
                ctx.Process(target=online_workers.write_batch, args=(path, "v", n, value, results))
            )
            procs[0].start()
            assert get(results) == ("written", n)
            procs[0].join(TIMEOUT_S)
        # The copy loaded before the write is stale: the read goes to LMDB.
        assert values() == {value}
        assert store.preload(["v"]) == {"v": True}
        assert values() == {value}


def test_full_map_raises_storage_full_and_writes_nothing(tmp_path: Path) -> None:
    store = OnlineStore(tmp_path / "s", map_size=1 << 20)
    simple_view(store)
    write_simple(store, [-1], [-1], T0)
    n = 100_000
    big = pa.table(
        {
            "k": np.arange(n),
            "x": np.arange(n),
            "s": pa.array(["v" * 8] * n),
            "event_timestamp": pa.array(np.full(n, micros(at(1))), pa.timestamp("us", tz="UTC")),
        }
    )
    with pytest.raises(errors.StorageFull, match="map_size") as info:
        store.write("v", big)
    assert isinstance(info.value, errors.StorageError)
    assert store.count("v") == 1
    assert store.read_one("v", [-1]) == {"x": -1, "s": "s-1"}
    assert store.read_one("v", [5])["x"] is None
    assert write_simple(store, [1, 2], [1, 2], T0) == WriteSummary(2, 2, 0)
    assert store.count("v") == 3
    assert x_of(store, 2) == 2


# --------------------------------------------------------------------------------------------
# 7. Concurrency across processes
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def processes() -> Iterator[list[Any]]:
    """Collects started processes; kills and reaps any still alive on exit."""
    started: list[Any] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.is_alive():
                proc.kill()
            proc.join(10)


def get(results: Any, timeout: float = TIMEOUT_S) -> tuple[str, Any]:
    try:
        kind, payload = results.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no report from a worker within {timeout} s")
    if kind == "error":
        pytest.fail(f"worker failed:\n{payload}")
    return kind, payload


def test_readers_see_whole_batches_in_order_while_a_process_writes(tmp_path: Path) -> None:
    # Odd readers keep the view in memory, reloaded after each read; even ones read LMDB.
    path, n_entities, n_batches, n_readers = str(tmp_path / "s"), 2000, 20, 4
    store = OnlineStore(path)
    store.register_view("v", {"k": "int64"}, {"x": "int64"})
    store.write("v", online_workers.batch_table(np.arange(n_entities), 0, 0))

    ctx = multiprocessing.get_context("spawn")
    results, start, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    ready = [ctx.Event() for _ in range(n_readers)]
    with processes() as procs:
        for i, event in enumerate(ready):
            procs.append(
                ctx.Process(
                    target=online_workers.consistency_reader,
                    args=(path, "v", n_entities, event, stop, results, i % 2 == 1),
                )
            )
        procs.append(
            ctx.Process(
                target=online_workers.consistency_writer,
                args=(path, "v", n_entities, n_batches, start, results),
            )
        )
        for proc in procs:
            proc.start()
        for event in ready:
            assert event.wait(TIMEOUT_S), "a reader did not start"
        start.set()
        assert get(results) == ("writer", n_batches)
        stop.set()
        observations = [get(results) for _ in range(n_readers)]
        for proc in procs:
            proc.join(TIMEOUT_S)
            assert proc.exitcode == 0

    seen_any: set[Any] = set()
    for kind, seen in observations:
        assert kind == "reader"
        sequence = [observation for observation, _ in seen]
        torn = [o for o in sequence if not isinstance(o, int)]
        assert not torn, f"a read mixed batches (batch = one transaction): {torn[:5]}"
        assert sequence == sorted(sequence), f"batch numbers went backwards: {sequence}"
        assert sequence[-1] == n_batches
        seen_any.update(sequence)
    assert len(seen_any) > 2, f"readers saw too few states to be meaningful: {seen_any}"
    assert store.read({"k": [0, n_entities - 1]}, ["v"]).values.column("v:x").to_pylist() == [
        n_batches,
        n_batches,
    ]


def lock_waits(store: OnlineStore, holder: Any, timeout: float) -> threading.Event:
    """Return once a tiny write to view ``probe`` of ``store`` has waited 0.5 s for the lock
    (which process ``holder`` is expected to hold).

    The writes go on in a daemon thread; the returned event is set when the waiting one
    completes.
    """
    store.register_view("probe", {"k": "int64"}, {"x": "int64"})
    row = {"k": [0], "x": [0], "event_timestamp": [T0]}
    in_flight_since: list[float | None] = [None]
    completed = threading.Event()

    def tiny_writes() -> None:
        while True:
            in_flight_since[0] = time.monotonic()
            store.write("probe", row)
            waited = time.monotonic() - in_flight_since[0]
            in_flight_since[0] = None
            if waited > 0.5:
                completed.set()
                return
            time.sleep(0.01)

    threading.Thread(target=tiny_writes, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        since = in_flight_since[0]
        if since is not None and time.monotonic() - since > 0.5:
            return completed
        if not holder.is_alive():
            pytest.fail("the writer exited before it was seen holding the lock")
        time.sleep(0.01)
    pytest.fail(f"no write of this process waited for the writer's lock within {timeout} s")


def test_writer_killed_mid_batch_leaves_only_committed_batches(tmp_path: Path) -> None:
    path, committed, per_batch, big_rows = str(tmp_path / "s"), 5, 100, 3_000_000
    store = OnlineStore(path)
    store.register_view("v", {"k": "int64"}, {"x": "int64"})

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    with processes() as procs:
        writer = ctx.Process(
            target=online_workers.killed_writer,
            args=(path, "v", committed, per_batch, big_rows, results),
        )
        procs.append(writer)
        writer.start()
        for i in range(committed):
            assert get(results) == ("committed", i)
        assert get(results) == ("starting", big_rows)
        # Kill while the big batch's LMDB write transaction is open. A tiny write from this
        # process takes ~1 ms unless it waits for the writer lock, so a tiny write stuck for
        # 0.5 s proves the child holds it (the 3M rows are prepared first, outside the lock).
        stuck = lock_waits(store, writer, timeout=30)
        assert writer.is_alive(), "the writer exited before the kill"
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(TIMEOUT_S)
        assert writer.exitcode == -signal.SIGKILL
        # The write waiting in this process gets the lock of the dead writer and completes.
        assert stuck.wait(TIMEOUT_S), "a write still waits for the lock of the killed writer"
        with contextlib.suppress(queue.Empty):
            late = results.get(timeout=0.2)
            pytest.fail(f"the big batch finished before the kill ({late}): make it bigger")

        # Another process can open the store (taking LMDB's writer lock) and write.
        probe = ctx.Process(target=online_workers.probe_store, args=(path, "v", results))
        procs.append(probe)
        probe.start()
        kind, (count_before, count_after, value) = get(results, timeout=30)
        assert kind == "probe"
        probe.join(TIMEOUT_S)
    assert count_before == committed * per_batch
    assert (count_after, value) == (committed * per_batch + 1, 7)

    expected = [i // per_batch + 1 for i in range(committed * per_batch)]
    keys = list(range(committed * per_batch + 1000))
    result = store.read({"k": keys}, ["v"])
    assert result.values.column("v:x").to_pylist() == expected + [None] * 1000
    assert store.count("v") == committed * per_batch + 1
    # A fresh handle (a new open in this process) agrees.
    del store
    reopened = OnlineStore(path)
    assert reopened.count("v") == committed * per_batch + 1
    assert reopened.read_one("v", [0]) == {"x": 1}


def test_same_store_opened_twice_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "s"
    first, second = OnlineStore(path), OnlineStore(str(path))
    first.register_view("v", {"k": "int64"}, {"x": "int64"})
    assert second.view("v") == first.view("v")
    second.write("v", {"k": [1], "x": [1], "event_timestamp": [T0]})
    assert first.read_one("v", [1]) == {"x": 1}
    first.write("v", {"k": [1], "x": [2], "event_timestamp": [T0]})
    assert second.read_one("v", [1]) == {"x": 2}
    # Through a symlink, and after one handle is gone.
    link = tmp_path / "link"
    link.symlink_to(path, target_is_directory=True)
    third = OnlineStore(link)
    assert third.path == first.path == str(path.resolve())
    del first
    assert third.read_one("v", [1]) == {"x": 2}
    third.register_view("v", {"k": "int64"}, {"x": "int64"}, ttl=60)
    assert second.view("v").ttl == dt.timedelta(seconds=60)
    del second, third
    assert OnlineStore(path).read_one("v", [1], now=T0) == {"x": 2}


def test_other_processes_see_a_chunked_write_whole_or_not_at_all(tmp_path: Path) -> None:
    path = str(tmp_path / "online")
    store = OnlineStore(path)
    store.register_view("v", {"k": "int64"}, {"x": "int64"})
    store.write("v", online_workers.batch_table(np.arange(100), 0, 0))
    read_x = (
        "import sys; from ferrostore.features import OnlineStore; s = OnlineStore(sys.argv[1]); "
        "x = s.read({'k': list(range(200))}, ['v']).values.column('v:x').to_pylist(); "
        "print(s.count('v'), sorted(set(x), key=repr))"
    )

    def observe() -> str:
        done = subprocess.run(
            [sys.executable, "-c", read_x, path],
            capture_output=True,
            text=True,
            check=True,
            timeout=online_workers.TIMEOUT_S,
        )
        return done.stdout.strip()

    during: list[str] = []

    def chunks() -> Iterator[pa.Table]:
        for b in (1, 2, 3):
            yield online_workers.batch_table(np.arange(200), b, b)
            during.append(observe())  # earlier chunks may already be in the transaction

    assert store.write_chunks("v", chunks()).rows == 600
    assert during == ["100 [0, None]"] * 3
    assert observe() == "200 [3]"


# --------------------------------------------------------------------------------------------
# 8. Threads
# --------------------------------------------------------------------------------------------


def test_threads_read_consistently_while_one_writes(store: OnlineStore) -> None:
    n_entities, n_batches, n_readers = 1000, 20, 4
    store.register_view("v", {"k": "int64"}, {"x": "int64"})
    keys = np.arange(n_entities)
    store.write("v", online_workers.batch_table(keys, 0, 0))
    tables = [online_workers.batch_table(keys, b, b) for b in range(1, n_batches + 1)]
    entities = pa.table({"k": keys})
    done = threading.Event()
    barrier = threading.Barrier(n_readers + 1)
    failures: list[BaseException] = []
    seen: list[list[Any]] = [[] for _ in range(n_readers)]

    def reader(i: int) -> None:
        try:
            barrier.wait(TIMEOUT_S)
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline:
                last = done.is_set()
                values = store.read(entities, ["v"]).values.column("v:x").to_pylist()
                seen[i].append(online_workers.summarize(values))
                if last:
                    break
        except BaseException as err:
            failures.append(err)

    def writer() -> None:
        try:
            barrier.wait(TIMEOUT_S)
            for table in tables:
                assert store.write("v", table).written == n_entities
                time.sleep(0.002)
        except BaseException as err:
            failures.append(err)
        finally:
            done.set()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n_readers)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
        assert not thread.is_alive()
    assert not failures, failures
    for sequence in seen:
        assert all(isinstance(o, int) for o in sequence), "a read mixed two batches"
        assert sequence == sorted(sequence)
        assert sequence[-1] == n_batches
    states = {o for sequence in seen for o in sequence}
    assert len(states) > 2, f"readers saw too few states to be meaningful: {states}"
    assert store.count("v") == n_entities


# --------------------------------------------------------------------------------------------
# 9. clear_view, delete_view, drop, views, view
# --------------------------------------------------------------------------------------------


def three_views(store: OnlineStore) -> None:
    for name in ("b", "a", "c"):  # registered out of order: a=2, b=1, c=3 view ids
        store.register_view(name, {"k": "int64"}, {"x": "int64"})
        store.write(name, {"k": [1, 2], "x": [1, 2], "event_timestamp": [T0, T0]})


def test_views_sorted_by_name_and_view(store: OnlineStore) -> None:
    assert store.views() == []
    three_views(store)
    assert [v.name for v in store.views()] == ["a", "b", "c"]
    assert all(v.version == 1 for v in store.views())
    assert store.view("b") == store.views()[1]
    assert store.view("b").features == (("x", "int64"),)


def test_clear_view_keeps_registration_and_neighbours(store: OnlineStore) -> None:
    three_views(store)
    schema = store.view("a")
    assert store.clear_view("a") == 2
    assert store.count("a") == 0
    assert store.view("a") == schema
    assert store.read({"k": [1, 2]}, ["a"]).status("a:x") == [NOT_FOUND, NOT_FOUND]
    assert store.count("b") == store.count("c") == 2
    assert x_of(store, 2, "b") == 2 and x_of(store, 1, "c") == 1
    assert store.clear_view("a") == 0
    store.write("a", {"k": [3], "x": [3], "event_timestamp": [T0]})
    assert store.count("a") == 1


def test_delete_view_removes_registration_and_rows(store: OnlineStore) -> None:
    three_views(store)
    store.delete_view("b")
    assert [v.name for v in store.views()] == ["a", "c"]
    for call in (
        lambda: store.view("b"),
        lambda: store.count("b"),
        lambda: store.read_one("b", [1]),
    ):
        with pytest.raises(errors.NotFound, match="'b'"):
            call()
    assert store.count("a") == store.count("c") == 2
    assert x_of(store, 1, "a") == 1 and x_of(store, 2, "c") == 2
    # Re-registered, it starts empty at version 1: the old rows do not come back.
    assert store.register_view("b", {"k": "int64"}, {"x": "int64"}).version == 1
    assert store.count("b") == 0
    assert x_of(store, 1, "b") is None


def test_drop_deletes_everything(store: OnlineStore) -> None:
    three_views(store)
    store.drop()
    assert store.views() == []
    with pytest.raises(errors.NotFound):
        store.count("a")
    with pytest.raises(errors.NotFound):
        store.read({"k": [1]}, ["a"])
    schema = store.register_view("a", {"k": "int64"}, {"x": "int64"})
    assert schema.version == 1
    assert store.count("a") == 0
    assert x_of(store, 1, "a") is None
    store.drop()  # dropping an empty store is fine
    assert store.views() == []
    # A new handle on the same folder sees the dropped state.
    assert OnlineStore(store.path).views() == []


RAW_COUNTS = """
import json, sys
import lmdb
env = lmdb.open(sys.argv[1], readonly=True, lock=False, max_dbs=8)
with env.begin() as txn:
    counts = {n: txn.stat(env.open_db(n.encode(), txn=txn, create=False))["entries"]
              for n in ("views", "data")}
print(json.dumps(counts))
"""


def raw_counts(path: str) -> dict[str, int]:
    """Entries of the store's LMDB databases, read by py-lmdb in another process (LMDB must
    not be opened twice in one process): rows orphaned under an old view id show up here."""
    done = subprocess.run(
        [sys.executable, "-c", RAW_COUNTS, path], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_deleted_rows_are_removed_from_lmdb(store: OnlineStore) -> None:
    three_views(store)
    assert raw_counts(store.path) == {"views": 3, "data": 6}
    store.clear_view("a")
    assert raw_counts(store.path) == {"views": 3, "data": 4}
    store.register_view("b", {"k": "int64"}, {"y": "int64"}, on_schema_change="new_version")
    assert raw_counts(store.path) == {"views": 3, "data": 2}
    store.write("b", {"k": [1], "y": [1], "event_timestamp": [T0]})
    store.delete_view("c")
    assert raw_counts(store.path) == {"views": 2, "data": 1}
    store.drop()
    assert raw_counts(store.path) == {"views": 0, "data": 0}


def test_store_path_property(tmp_path: Path) -> None:
    store = OnlineStore(tmp_path / "new" / "nested")
    assert store.path == str((tmp_path / "new" / "nested").resolve())
    assert (tmp_path / "new" / "nested" / "data.mdb").is_file()
