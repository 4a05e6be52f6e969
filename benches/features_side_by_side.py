"""Feature store side by side: training sets, online reads and materialize, against peers.

Usage::

    python benches/features_side_by_side.py [--entity-rows N] [--feature-rows M]
        [--materialize-rows R] [--repeat K] [--feast-python PATH] [--skip-feast]

One synthetic dataset shaped like the lesson's is written to Parquet in a temporary folder:
customers, two feature views keyed by ``customer_id`` (``customer_transactions``: 3 features,
ttl 90 days; ``customer_profile``: 2 features, no ttl), both with a created timestamp; about
5% of feature rows repeat another row's (key, event time) with other values and another
created time (ties on event time); 1 in 11 of the entity rows' customers has no data at all.
Then each contender runs in its own subprocess (so its peak RSS, from ``getrusage``, is its
own) on the same files:

* training set (``get_historical_features``), Parquet read included, rows pre-filtered to
  ``[min entity time - ttl, max entity time]`` by every contender as ferrostore does:
  ferrostore's ``FeatureStore(...).get_historical_features(...).to_df()``; pandas
  (``read_parquet`` + sort + ``merge_asof`` per view); DuckDB (``ASOF LEFT JOIN`` per view
  after a ``QUALIFY`` keeping the greatest created time per key and time); Polars (lazy scan
  with the filter, sort, ``unique`` per key and time, ``join_asof``); Feast with its DuckDB
  offline store (``get_historical_features(...).to_df()``);
* ``materialize`` of ``--materialize-rows`` rows (one view, 5 features) into ferrostore's
  LMDB store and into Feast's SQLite online store;
* ``get_online_features(...).to_dict()`` per call, p50 / p99, for 1 entity x 3 features and
  100 entities x 5 features, on the materialized view, after a warm-up of both shapes for
  ``ONLINE_WARMUP_S`` (each store's caches settle: the OS page cache, and ferrostore's copy of
  the view in memory, loaded in the background on its first read).

Every contender's result is checked against ferrostore's (equal values, nulls included);
times are printed with ratios ``peer / ferrostore`` and nothing asserts a time. Feast runs
under ``--feast-python`` (an interpreter with ``feast[duckdb]`` installed) when the current
one lacks it; it is left out, and said so, when neither has it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

KEY = "customer_id"
TS = "event_timestamp"
CREATED = "created_timestamp"
#: view name -> (features with Arrow types, ttl in days; 0 for none)
VIEWS: dict[str, tuple[list[tuple[str, pa.DataType]], int]] = {
    "customer_transactions": (
        [
            ("total_transactions_30d", pa.int64()),
            ("avg_transaction_amount_30d", pa.float32()),
            ("transaction_count_7d", pa.int64()),
        ],
        90,
    ),
    "customer_profile": ([("credit_score", pa.int64()), ("lifetime_value", pa.float64())], 0),
}
MAT_VIEW = "customer_online"
MAT_FEATURES: list[tuple[str, pa.DataType]] = [
    ("orders_30d", pa.int64()),
    ("items_30d", pa.int64()),
    ("avg_basket", pa.float32()),
    ("discount_rate", pa.float32()),
    ("lifetime_value", pa.float64()),
]
OUTPUTS = [name for feats, _ in VIEWS.values() for name, _ in feats]
START = np.datetime64("2023-01-01T00:00", "m")
MINUTES = 365 * 24 * 60
HIST = ["ferrostore", "pandas", "duckdb", "polars", "feast"]
ONLINE = ["ferrostore", "feast"]
ONE_CALLS, HUNDRED_CALLS = 2_000, 300
ONLINE_WARMUP_S = 1.0


# --------------------------------------------------------------------------- data


def _feature_rows(
    rng: np.random.Generator, n: int, customers: int, features: list[tuple[str, pa.DataType]]
) -> pa.Table:
    """``n`` rows over ``customers`` ids: minute event times, ~5% ties on (key, time)."""
    ndup = n // 20
    base = n - ndup
    keys = rng.integers(1, customers + 1, base, dtype=np.int64)
    minutes = rng.integers(0, MINUTES, base, dtype=np.int64)
    offsets = rng.integers(0, 1000, base, dtype=np.int64)
    src = rng.choice(base, ndup, replace=False)
    keys = np.concatenate([keys, keys[src]])
    minutes = np.concatenate([minutes, minutes[src]])
    # A tie's created time differs from its original's (both within the first ms).
    offsets = np.concatenate([offsets, (offsets[src] + rng.integers(1, 1000, ndup)) % 1000])
    order = rng.permutation(n)
    keys, minutes, offsets = keys[order], minutes[order], offsets[order]
    event = START.astype("datetime64[us]") + minutes.astype("timedelta64[m]")
    columns: dict[str, Any] = {
        KEY: keys,
        TS: pa.array(event),
        CREATED: pa.array(event + offsets.astype("timedelta64[us]")),
    }
    for name, kind in features:
        if pa.types.is_integer(kind):
            columns[name] = rng.integers(0, 1_000, n, dtype=np.int64)
        elif kind == pa.float32():
            columns[name] = rng.gamma(2.0, 30.0, n).astype(np.float32)
        else:
            columns[name] = rng.gamma(2.0, 500.0, n)
    return pa.table(columns)


def make_data(folder: Path, entity_rows: int, feature_rows: int, mat_rows: int, seed: int) -> None:
    """Write the entity rows, both views' sources and the materialize source as Parquet."""
    rng = np.random.default_rng(seed)
    customers = max(entity_rows // 2, 1)
    split = feature_rows * 2 // 3
    sizes = {"customer_transactions": split, "customer_profile": feature_rows - split}
    for view, (features, _) in VIEWS.items():
        table = _feature_rows(rng, sizes[view], customers, features)
        pq.write_table(table, folder / f"{view}.parquet", row_group_size=256 * 1024)
    # Entity times: the year's second half, whole minute + 30 s, so every feature row at or
    # before them was also created before them (Feast's DuckDB store filters on that).
    minutes = rng.integers(MINUTES // 2, MINUTES, entity_rows, dtype=np.int64)
    when = (START + minutes.astype("timedelta64[m]")).astype("datetime64[us]")
    entity = pa.table(
        {
            KEY: rng.integers(1, customers * 11 // 10 + 2, entity_rows, dtype=np.int64),
            TS: pa.array(when + np.timedelta64(30, "s")),
            "row_id": np.arange(entity_rows, dtype=np.int64),
        }
    )
    pq.write_table(entity, folder / "entity.parquet")
    mat = _feature_rows(rng, mat_rows, max(mat_rows // 4, 1), MAT_FEATURES)
    pq.write_table(mat, folder / f"{MAT_VIEW}.parquet", row_group_size=256 * 1024)


def _window(entity: pa.Table, ttl_days: int) -> tuple[np.datetime64, np.datetime64]:
    ts = entity.column(TS).to_numpy()
    lo = ts.min() - np.timedelta64(ttl_days, "D") if ttl_days else np.datetime64(0, "us")
    return lo, ts.max()


# --------------------------------------------------------------------------- workers


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rss_now() -> int:
    return _status_kib("VmRSS:") or 0


def _peak_rss() -> int:
    # VmHWM is this process's own high-water mark. ru_maxrss is not: Linux carries the
    # parent's peak across fork/vfork + exec, so every worker would report at least the
    # parent's RSS after it generated the data.
    hwm = _status_kib("VmHWM:")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def _ferro_repo(folder: Path, name: str, views: list[str]) -> Any:
    from ferrostore.features import Entity, FeatureStore, FeatureView, Field, FileSource
    from ferrostore.features import types as ft

    kinds = {pa.int64(): ft.Int64, pa.float32(): ft.Float32, pa.float64(): ft.Float64}
    repo = folder / name
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(
        f"project: bench\nonline_store:\n  path: {repo}/lmdb\n"
    )
    customer = Entity(name=KEY, join_keys=[KEY])
    objects: list[Any] = [customer]
    specs = {**VIEWS, MAT_VIEW: (MAT_FEATURES, 0)}
    for view in views:
        features, ttl = specs[view]
        objects.append(
            FeatureView(
                name=view,
                entities=[customer],
                ttl=np.timedelta64(ttl, "D").item(),
                schema=[Field(name=n, dtype=kinds[k]) for n, k in features],
                source=FileSource(
                    path=str(folder / f"{view}.parquet"),
                    timestamp_field=TS,
                    created_timestamp_column=CREATED,
                ),
                online=True,
            )
        )
    store = FeatureStore(repo)
    store.apply(objects)
    return store


def _feast_repo(folder: Path, name: str, views: list[str]) -> Any:
    import datetime as dt

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32, Float64, Int64

    kinds = {pa.int64(): Int64, pa.float32(): Float32, pa.float64(): Float64}
    repo = folder / name
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: bench
            registry: {repo}/registry.db
            provider: local
            offline_store:
              type: duckdb
            online_store:
              type: sqlite
              path: {repo}/online.db
            entity_key_serialization_version: 3
            """
        )
    )
    customer = Entity(name=KEY, join_keys=[KEY], value_type=ValueType.INT64)
    objects: list[Any] = [customer]
    specs = {**VIEWS, MAT_VIEW: (MAT_FEATURES, 0)}
    for view in views:
        features, ttl = specs[view]
        objects.append(
            FeatureView(
                name=view,
                entities=[customer],
                ttl=dt.timedelta(days=ttl),
                schema=[Field(name=n, dtype=kinds[k]) for n, k in features],
                source=FileSource(
                    path=str(folder / f"{view}.parquet"),
                    timestamp_field=TS,
                    created_timestamp_column=CREATED,
                ),
                online=True,
            )
        )
    store = FeatureStore(repo_path=str(repo))
    store.apply(objects)
    return store


def _refs() -> list[str]:
    return [f"{view}:{name}" for view, (feats, _) in VIEWS.items() for name, _ in feats]


def hist_ferrostore(folder: Path, repeat: int) -> tuple[list[float], pa.Table]:
    store = _ferro_repo(folder, "ferro_repo", list(VIEWS))
    entity = pq.read_table(folder / "entity.parquet").to_pandas()
    refs = _refs()
    times, df = _timed(
        lambda: store.get_historical_features(entity_df=entity, features=refs).to_df(), repeat
    )
    return times, pa.Table.from_pandas(df[["row_id", *OUTPUTS]], preserve_index=False)


def hist_pandas(folder: Path, repeat: int) -> tuple[list[float], pa.Table]:
    import pandas as pd

    entity_arrow = pq.read_table(folder / "entity.parquet")
    entity = entity_arrow.to_pandas()
    windows = {view: _window(entity_arrow, ttl) for view, (_, ttl) in VIEWS.items()}

    def run() -> pd.DataFrame:
        left = entity.sort_values(TS, kind="stable")
        for view, (features, ttl) in VIEWS.items():
            lo, hi = windows[view]
            names = [n for n, _ in features]
            rows = pd.read_parquet(
                folder / f"{view}.parquet",
                columns=[KEY, TS, CREATED, *names],
                filters=[(TS, ">=", pd.Timestamp(lo)), (TS, "<=", pd.Timestamp(hi))],
            )
            rows["_pos"] = np.arange(len(rows))
            # Per (key, time): the greatest created time, then the later source row.
            rows = rows.sort_values([TS, CREATED, "_pos"], kind="stable").drop_duplicates(
                [KEY, TS], keep="last"
            )
            left = pd.merge_asof(
                left,
                rows[[KEY, TS, *names]],
                on=TS,
                by=KEY,
                direction="backward",
                allow_exact_matches=True,
                tolerance=pd.Timedelta(days=ttl) if ttl else None,
            )
        return left.sort_values("row_id", kind="stable")

    times, df = _timed(run, repeat)
    return times, pa.Table.from_pandas(df[["row_id", *OUTPUTS]], preserve_index=False)


def hist_duckdb(folder: Path, repeat: int) -> tuple[list[float], pa.Table]:
    import duckdb

    entity = pq.read_table(folder / "entity.parquet")
    con = duckdb.connect()
    con.register("entity", entity)
    selects, joins = [], []
    for i, (view, (features, ttl)) in enumerate(VIEWS.items()):
        lo, hi = _window(entity, ttl)
        names = [n for n, _ in features]
        path = str(folder / f"{view}.parquet").replace("'", "''")
        con.execute(
            f"""CREATE OR REPLACE VIEW v{i} AS
            SELECT {KEY}, {TS}, {", ".join(names)} FROM (
                SELECT *, file_row_number AS _pos
                FROM read_parquet('{path}', file_row_number = true)
                WHERE {TS} BETWEEN TIMESTAMP '{lo}' AND TIMESTAMP '{hi}'
            )
            QUALIFY row_number() OVER (
                PARTITION BY {KEY}, {TS} ORDER BY {CREATED} DESC NULLS LAST, _pos DESC) = 1"""
        )
        keep = f"v{i}.{TS} >= e.{TS} - INTERVAL {ttl} DAY" if ttl else "TRUE"
        selects += [f"CASE WHEN {keep} THEN v{i}.{n} END AS {n}" for n in names]
        joins.append(f"ASOF LEFT JOIN v{i} ON e.{KEY} = v{i}.{KEY} AND e.{TS} >= v{i}.{TS}")
    sql = f"SELECT e.row_id, {', '.join(selects)} FROM entity e {' '.join(joins)} ORDER BY e.row_id"
    times, table = _timed(lambda: con.execute(sql).to_arrow_table(), repeat)
    return times, table


def hist_polars(folder: Path, repeat: int) -> tuple[list[float], pa.Table]:
    import datetime as dt

    import polars as pl

    entity_arrow = pq.read_table(folder / "entity.parquet")
    entity = pl.from_arrow(entity_arrow)

    def run() -> pl.DataFrame:
        left = entity.sort(TS)
        for view, (features, ttl) in VIEWS.items():
            lo, hi = _window(entity_arrow, ttl)
            names = [n for n, _ in features]
            rows = (
                pl.scan_parquet(folder / f"{view}.parquet")
                .select([KEY, TS, CREATED, *names])
                .filter(pl.col(TS).is_between(lo.item(), hi.item()))
                .with_row_index("_pos")
                .sort([TS, CREATED, "_pos"])
                .unique([KEY, TS], keep="last", maintain_order=True)
                .select([KEY, TS, *names])
                .collect()
            )
            left = left.join_asof(
                rows,
                on=TS,
                by=KEY,
                strategy="backward",
                tolerance=dt.timedelta(days=ttl) if ttl else None,
                check_sortedness=False,
            )
        return left.sort("row_id")

    times, df = _timed(run, repeat)
    return times, df.select(["row_id", *OUTPUTS]).to_arrow()


def hist_feast(folder: Path, repeat: int) -> tuple[list[float], pa.Table]:
    store = _feast_repo(folder, "feast_repo", list(VIEWS))
    entity = pq.read_table(folder / "entity.parquet").to_pandas()
    refs = _refs()
    times, df = _timed(
        lambda: store.get_historical_features(entity_df=entity, features=refs).to_df(), repeat
    )
    df = df.sort_values("row_id", kind="stable")
    return times, pa.Table.from_pandas(df[["row_id", *OUTPUTS]], preserve_index=False)


def _online_calls(folder: Path, seed: int) -> tuple[list[int], list[list[int]]]:
    rng = np.random.default_rng(seed + 1)
    customers = pq.read_table(folder / f"{MAT_VIEW}.parquet", columns=[KEY]).column(KEY)
    top = int(customers.to_numpy().max())
    # Keys up to 5% past the largest id: some entities are not found.
    ones = rng.integers(1, top * 21 // 20 + 2, ONE_CALLS).tolist()
    hundreds = [rng.integers(1, top * 21 // 20 + 2, 100).tolist() for _ in range(HUNDRED_CALLS)]
    return ones, hundreds


def _online(
    store: Any, folder: Path, seed: int, materialize: Callable[[], Any]
) -> tuple[dict[str, Any], list[Any]]:
    t0 = time.perf_counter()
    materialize()
    mat = time.perf_counter() - t0
    three = [f"{MAT_VIEW}:{n}" for n, _ in MAT_FEATURES[:3]]
    five = [f"{MAT_VIEW}:{n}" for n, _ in MAT_FEATURES]
    ones, hundreds = _online_calls(folder, seed)
    samples: list[Any] = []
    # Warm-up, both shapes, for ONLINE_WARMUP_S: a serving process's caches settle first
    # (the OS page cache; ferrostore loads each view it reads into memory in the background).
    warm_until = time.perf_counter() + ONLINE_WARMUP_S
    for i in itertools.count():
        key, keys = ones[i % 50], hundreds[i % 10]
        store.get_online_features(features=three, entity_rows=[{KEY: key}]).to_dict()
        store.get_online_features(features=five, entity_rows=[{KEY: k} for k in keys]).to_dict()
        if i >= 50 and time.perf_counter() > warm_until:
            break
    one_times = []
    for i, key in enumerate(ones):
        t0 = time.perf_counter()
        out = store.get_online_features(features=three, entity_rows=[{KEY: key}]).to_dict()
        one_times.append(time.perf_counter() - t0)
        if i < 200:
            samples.append(out)
    hundred_times = []
    for i, keys in enumerate(hundreds):
        rows = [{KEY: k} for k in keys]
        t0 = time.perf_counter()
        out = store.get_online_features(features=five, entity_rows=rows).to_dict()
        hundred_times.append(time.perf_counter() - t0)
        if i < 20:
            samples.append(out)
    return {"materialize": mat, "one": one_times, "hundred": hundred_times}, samples


def _mat_window(folder: Path) -> tuple[Any, Any]:
    import datetime as dt

    ts = pq.read_table(folder / f"{MAT_VIEW}.parquet", columns=[TS]).column(TS).to_numpy()
    lo = ts.min().astype("datetime64[us]").item().replace(tzinfo=dt.UTC)
    hi = ts.max().astype("datetime64[us]").item().replace(tzinfo=dt.UTC)
    return lo, hi


def online_ferrostore(folder: Path, seed: int) -> tuple[dict[str, Any], list[Any]]:
    store = _ferro_repo(folder, "ferro_online", [MAT_VIEW])
    lo, hi = _mat_window(folder)
    return _online(store, folder, seed, lambda: store.materialize(lo, hi, [MAT_VIEW]))


def online_feast(folder: Path, seed: int) -> tuple[dict[str, Any], list[Any]]:
    store = _feast_repo(folder, "feast_online", [MAT_VIEW])
    lo, hi = _mat_window(folder)
    return _online(store, folder, seed, lambda: store.materialize(lo, hi, feature_views=[MAT_VIEW]))


def worker(kind: str, name: str, folder: Path, repeat: int, seed: int) -> None:
    """Run one contender and print its numbers as one ``RESULT`` JSON line."""
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    if kind == "hist":
        fn = globals()[f"hist_{name}"]
        times, table = fn(folder, repeat)
        pq.write_table(table, folder / f"out_{name}.parquet")
        result["times"] = times
    else:
        fn = globals()[f"online_{name}"]
        result, samples = fn(folder, seed)
        (folder / f"online_{name}.json").write_text(json.dumps(samples, default=str))
    result["peak_rss"] = _peak_rss()
    result["rss_end"] = _rss_now()
    result["wall"] = time.perf_counter() - t0
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent


def _has_feast(python: str) -> bool:
    probe = subprocess.run(
        [python, "-c", "import feast, duckdb, ibis"], capture_output=True, check=False
    )
    return probe.returncode == 0


def _spawn(python: str, kind: str, name: str, folder: Path, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env.pop("FERROSTORE_METADATA_URL", None)
    src = str(Path(__file__).resolve().parents[1] / "python")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [src, env.get("PYTHONPATH", "")] if p)
    cmd = [python, __file__, "--worker", kind, name, "--data", str(folder)]
    cmd += ["--repeat", str(args.repeat), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} {name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _as_float(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.float64()).fill_null(np.nan).to_numpy()


def _check_hist(folder: Path, name: str) -> str:
    ref = pq.read_table(folder / "out_ferrostore.parquet")
    got = pq.read_table(folder / f"out_{name}.parquet")
    assert got.num_rows == ref.num_rows, f"{name}: {got.num_rows} rows, expected {ref.num_rows}"
    assert got.column("row_id").to_pylist() == ref.column("row_id").to_pylist(), name
    for col in OUTPUTS:
        a, b = _as_float(ref.column(col)), _as_float(got.column(col))
        same = np.array_equal(a, b, equal_nan=True)
        assert same, (
            f"{name}: column {col} differs from ferrostore's at {np.flatnonzero(a != b)[:5]}"
        )
    nulls = int(ref.column(OUTPUTS[0]).null_count)
    return f"{name}: {ref.num_rows:,} rows x {len(OUTPUTS)} features equal ({nulls:,} null rows)"


def _check_online(folder: Path) -> str:
    ref = json.loads((folder / "online_ferrostore.json").read_text())
    got = json.loads((folder / "online_feast.json").read_text())
    assert len(ref) == len(got)
    checked = 0
    for a, b in zip(ref, got, strict=True):
        assert a[KEY] == b[KEY]
        for col, values in a.items():
            for x, y in zip(values, b[col], strict=True):
                assert (x is None) == (y is None), (col, x, y)
                if x is not None:
                    assert np.isclose(float(x), float(y), rtol=1e-6), (col, x, y)
                checked += 1
    return f"online: {checked:,} values of {len(ref)} calls equal between ferrostore and Feast"


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> None:
    """Parse the flags; run one worker, or generate data, run every contender and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--feature-rows", type=int, default=2_000_000)
    parser.add_argument("--materialize-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per training set")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--feast-python", default="", help="interpreter with feast[duckdb]")
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated training-set contenders")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "NAME"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], Path(args.data), args.repeat, args.seed)
        return

    feast_python = ""
    if not args.skip_feast:
        for candidate in [sys.executable, args.feast_python]:
            if candidate and _has_feast(candidate):
                feast_python = candidate
                break
    folder = Path(tempfile.mkdtemp(prefix="ferro_features_bench_"))
    try:
        t0 = time.perf_counter()
        make_data(folder, args.entity_rows, args.feature_rows, args.materialize_rows, args.seed)
        print(
            f"python {platform.python_version()} on {platform.machine()}, "
            f"{os.cpu_count()} cores; data written in {time.perf_counter() - t0:.1f} s"
        )
        print(
            f"training set: {args.entity_rows:,} entity rows x {args.feature_rows:,} feature "
            f"rows (2 views, {len(OUTPUTS)} features), best and median of {args.repeat} runs"
        )
        if feast_python:
            version = subprocess.run(
                [feast_python, "-c", "import feast; print(feast.__version__)"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            print(f"feast {version} under {feast_python}")
        else:
            print("feast: not installed here (nor under --feast-python): its rows are left out")
        hist: dict[str, dict] = {}
        names = [n for n in HIST if not args.only or n in args.only.split(",") or n == "ferrostore"]
        for name in names:
            if name == "feast" and not feast_python:
                continue
            python = feast_python if name == "feast" else sys.executable
            hist[name] = _spawn(python, "hist", name, folder, args)
            if name != "ferrostore":
                print("  check " + _check_hist(folder, name))
        base = min(hist["ferrostore"]["times"])
        print()
        header = f"{'training set':<12} {'best':>10} {'median':>10} {'x ferro':>8} {'peak RSS':>10}"
        print(header)
        print("-" * len(header))
        for name, res in hist.items():
            best, med = min(res["times"]), statistics.median(res["times"])
            print(
                f"{name:<12} {_fmt_s(best):>10} {_fmt_s(med):>10} {best / base:>8.2f} "
                f"{_mib(res['peak_rss']):>10}"
            )
        if args.skip_online:
            return
        online: dict[str, dict] = {
            "ferrostore": _spawn(sys.executable, "online", "ferrostore", folder, args)
        }
        if feast_python:
            online["feast"] = _spawn(feast_python, "online", "feast", folder, args)
            print("  check " + _check_online(folder))
        print()
        print(f"materialize {args.materialize_rows:,} rows (one view, 5 features)")
        header = (
            f"{'online':<12} {'materialize':>12} {'1x3 p50':>9} {'1x3 p99':>9} "
            f"{'100x5 p50':>10} {'100x5 p99':>10} {'peak RSS':>10}"
        )
        print(header)
        print("-" * len(header))
        ref = online["ferrostore"]
        for name, res in online.items():
            print(
                f"{name:<12} {_fmt_s(res['materialize']):>12} {_fmt_us(_pct(res['one'], 50)):>9} "
                f"{_fmt_us(_pct(res['one'], 99)):>9} {_fmt_us(_pct(res['hundred'], 50)):>10} "
                f"{_fmt_us(_pct(res['hundred'], 99)):>10} {_mib(res['peak_rss']):>10}"
            )
        if "feast" in online:
            res = online["feast"]
            print(
                f"{'feast/ferro':<12} {res['materialize'] / ref['materialize']:>11.1f}x "
                f"{_pct(res['one'], 50) / _pct(ref['one'], 50):>8.1f}x "
                f"{_pct(res['one'], 99) / _pct(ref['one'], 99):>8.1f}x "
                f"{_pct(res['hundred'], 50) / _pct(ref['hundred'], 50):>9.1f}x "
                f"{_pct(res['hundred'], 99) / _pct(ref['hundred'], 99):>9.1f}x"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
