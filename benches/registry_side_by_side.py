"""Tracking and registry calls: ferrostore.registry vs MLflow (SQLite backend), same operations.

Run: ``python benches/registry_side_by_side.py [--versions 10000] [--runs 10000]``.

Both sides use a fresh SQLite file in a temporary folder. The 10,000 model versions and
10,000 runs searched over are bulk-inserted into each system's own tables (setup, not
timed); every timed operation goes through the public API. Each operation runs in three
rounds per side, the sides taking turns (calls back to back within a round, after a
warm-up), so a slow minute of a noisy machine falls on both. Times are medians over all
rounds; ratios are MLflow time / ferrostore time (higher = ferrostore faster); the last
column is the range of the round-by-round ratios.
``load_model`` is timed alone (both load the pickle eagerly) and with a 5-row predict,
whose scikit-learn time is the same on both sides. Needs scikit-learn; MLflow is optional
(``pip install mlflow-skinny`` is enough for its SQLite store).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import sqlalchemy as sa

N_PARAMS = 10
N_POINTS = 1000


class Timed(NamedTuple):
    """One timed operation of a side: ``call(i)`` for its ``i``-th call (warm-ups counted)."""

    name: str
    call: Callable[[int], Any]
    repeats: int
    same_result: bool = False
    """The last results of both sides must be equal (the searches' row counts)."""


Side = Iterator[Timed]
"""A side's operations in order; its untimed setup runs between them."""

ROUNDS = 3
"""Each operation runs in this many rounds per side, the sides taking turns."""


def _model() -> tuple[Any, pd.DataFrame]:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(500, 8)), columns=[f"f{i}" for i in range(8)])
    y = (X["f0"] + X["f1"] > 0).astype(int)
    return RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y), X


def _bulk(engine: sa.Engine, table: str, rows: list[dict[str, Any]]) -> None:
    meta = sa.MetaData()
    tbl = sa.Table(table, meta, autoload_with=engine)
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(sa.insert(tbl), rows[start : start + 5000])


def _round(op: Timed, first_call: int) -> tuple[list[float], Any]:
    """One warm-up call, then ``op.repeats`` timed calls back to back; times and last result."""
    gc.collect()
    result = op.call(first_call)
    times = []
    for i in range(first_call + 1, first_call + 1 + op.repeats):
        start = time.perf_counter()
        result = op.call(i)
        times.append(time.perf_counter() - start)
    return times, result


def _take_turns(op: Timed, other: Timed | None) -> list[list[list[float]]]:
    """Time ``op`` and ``other`` in alternating rounds; each side's times, round by round.

    Within a round one side's calls run back to back (as timeit runs them, the caches warm
    with its own work); the rounds alternate so that a slow minute of the machine falls on
    both sides.
    """
    sides = [op] if other is None else [op, other]
    times: list[list[list[float]]] = [[] for _ in sides]
    results: list[Any] = [None for _ in sides]
    for r in range(ROUNDS):
        for k, side in enumerate(sides):
            round_times, results[k] = _round(side, r * (op.repeats + 1))
            times[k].append(round_times)
    if other is not None and op.same_result and results[0] != results[1]:
        raise AssertionError(f"{op.name}: ferrostore gave {results[0]}, MLflow {results[1]}")
    return times


def _searches_and_loads(
    client: Any, module: Any, exp_id: str, uri: str, X: pd.DataFrame, n_versions: int, n_runs: int
) -> Side:
    """The searches and model loads, the same calls on both sides (``module``: ferrostore's
    registry or mlflow; ``client``: its client)."""
    yield Timed(
        f"search_model_versions ({n_versions:,} versions)",
        lambda _: len(client.search_model_versions("name = 'bench' AND tags.shard = '42'")),
        9,
        same_result=True,
    )
    yield Timed(
        f"search_runs ({n_runs:,} runs)",
        lambda _: len(module.search_runs([exp_id], "metrics.acc > 0.9 AND params.model = 'xgb'")),
        9,
        same_result=True,
    )
    yield Timed("load_model (scikit-learn)", lambda _: module.pyfunc.load_model(uri), 10)
    yield Timed(
        "load_model + predict (5 rows)",
        lambda _: module.pyfunc.load_model(uri).predict(X.head(5)),
        10,
    )


def ferrostore_side(folder: Path, n_versions: int, n_runs: int) -> Side:
    import ferrostore.registry as fs
    from ferrostore.registry import Client, Metric
    from ferrostore.registry.tracking import store_for

    fs.set_tracking_uri(folder)
    client = Client()
    model, X = _model()
    params = {f"p{i}": i for i in range(N_PARAMS)}

    def run_with_metrics(_: int) -> None:
        with fs.start_run() as run:
            fs.log_params(params)
            now = int(time.time() * 1000)
            client.log_batch(
                run.info.run_id, [Metric("loss", 1.0 / (s + 1), now, s) for s in range(N_POINTS)]
            )

    yield Timed("run: 10 params + 1,000 metric points", run_with_metrics, 9)

    with fs.start_run() as run:
        fs.sklearn.log_model(model, name="model")
    uri = f"runs:/{run.info.run_id}/model"
    versions: list[int] = []
    yield Timed(
        "register_model", lambda _: versions.append(fs.register_model(uri, "reg").version), 20
    )
    yield Timed(
        "stage transition",
        lambda i: client.transition_model_version_stage("reg", versions[i], "Staging"),
        20,
    )

    # Setup: n_versions versions of "bench" and n_runs runs, bulk-inserted.
    store = store_for()
    engine = store.db.engine
    now = int(time.time() * 1000)
    _bulk(
        engine,
        "registered_models",
        [{"name": "bench", "creation_time": now, "last_updated_time": now}],
    )
    _bulk(
        engine,
        "model_versions",
        [
            {
                "name": "bench",
                "version": v,
                "creation_time": now,
                "last_updated_time": now,
                "user_id": "u",
                "current_stage": "None",
                "source": uri,
                "run_id": run.info.run_id,
                "status": "READY",
            }
            for v in range(1, n_versions + 1)
        ],
    )
    _bulk(
        engine,
        "model_version_tags",
        [
            {"name": "bench", "version": v, "key": "shard", "value": str(v % 1000)}
            for v in range(1, n_versions + 1)
        ],
    )
    exp_id = fs.create_experiment("search-bench")
    run_ids = [uuid.uuid4().hex for _ in range(n_runs)]
    rng = np.random.default_rng(1)
    accs = rng.uniform(size=n_runs)
    _bulk(
        engine,
        "runs",
        [
            {
                "run_id": r,
                "experiment_id": exp_id,
                "run_name": f"r{i}",
                "user_id": "u",
                "status": "FINISHED",
                "start_time": now + i,
                "end_time": now + i,
                "lifecycle_stage": "active",
                "artifact_uri": f"runs:/{r}",
            }
            for i, r in enumerate(run_ids)
        ],
    )
    _bulk(
        engine,
        "run_params",
        [
            {"run_id": r, "key": "model", "value": "xgb" if i % 2 else "lr"}
            for i, r in enumerate(run_ids)
        ],
    )
    _bulk(engine, "run_tags", [{"run_id": r, "key": "team", "value": "x"} for r in run_ids])
    metric_rows = [
        {"run_id": r, "key": "acc", "value": float(a), "is_nan": False, "timestamp": now, "step": 0}
        for r, a in zip(run_ids, accs, strict=True)
    ]
    _bulk(engine, "run_metrics", metric_rows)
    _bulk(engine, "run_latest_metrics", metric_rows)

    yield from _searches_and_loads(client, fs, exp_id, uri, X, n_versions, n_runs)


def mlflow_side(folder: Path, n_versions: int, n_runs: int) -> Side:
    import logging

    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    db = folder / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    client = MlflowClient()
    model, X = _model()
    params = {f"p{i}": i for i in range(N_PARAMS)}

    def run_with_metrics(_: int) -> None:
        with mlflow.start_run() as run:
            mlflow.log_params(params)
            now = int(time.time() * 1000)
            client.log_batch(
                run.info.run_id,
                metrics=[Metric("loss", 1.0 / (s + 1), now, s) for s in range(N_POINTS)],
            )

    yield Timed("run: 10 params + 1,000 metric points", run_with_metrics, 9)

    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    uri = f"runs:/{run.info.run_id}/model"
    versions: list[int] = []
    yield Timed(
        "register_model",
        lambda _: versions.append(int(mlflow.register_model(uri, "reg").version)),
        20,
    )
    yield Timed(
        "stage transition",
        lambda i: client.transition_model_version_stage("reg", versions[i], "Staging"),
        20,
    )

    engine = sa.create_engine(f"sqlite:///{db}")
    now = int(time.time() * 1000)
    _bulk(
        engine,
        "registered_models",
        [{"name": "bench", "creation_time": now, "last_updated_time": now}],
    )
    _bulk(
        engine,
        "model_versions",
        [
            {
                "name": "bench",
                "version": v,
                "creation_time": now,
                "last_updated_time": now,
                "user_id": "u",
                "current_stage": "None",
                "source": uri,
                "run_id": run.info.run_id,
                "status": "READY",
                "storage_location": uri,
            }
            for v in range(1, n_versions + 1)
        ],
    )
    _bulk(
        engine,
        "model_version_tags",
        [
            {"name": "bench", "version": v, "key": "shard", "value": str(v % 1000)}
            for v in range(1, n_versions + 1)
        ],
    )
    exp_id = client.create_experiment("search-bench")
    run_ids = [uuid.uuid4().hex for _ in range(n_runs)]
    rng = np.random.default_rng(1)
    accs = rng.uniform(size=n_runs)
    _bulk(
        engine,
        "runs",
        [
            {
                "run_uuid": r,
                "name": f"r{i}",
                "source_type": "LOCAL",
                "source_name": "",
                "entry_point_name": "",
                "user_id": "u",
                "status": "FINISHED",
                "start_time": now + i,
                "end_time": now + i,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": str(folder / "a" / r),
                "experiment_id": int(exp_id),
            }
            for i, r in enumerate(run_ids)
        ],
    )
    _bulk(
        engine,
        "params",
        [
            {"run_uuid": r, "key": "model", "value": "xgb" if i % 2 else "lr"}
            for i, r in enumerate(run_ids)
        ],
    )
    _bulk(engine, "tags", [{"run_uuid": r, "key": "team", "value": "x"} for r in run_ids])
    metric_rows = [
        {
            "run_uuid": r,
            "key": "acc",
            "value": float(a),
            "is_nan": False,
            "timestamp": now,
            "step": 0,
        }
        for r, a in zip(run_ids, accs, strict=True)
    ]
    _bulk(engine, "metrics", metric_rows)
    _bulk(engine, "latest_metrics", metric_rows)
    engine.dispose()

    yield from _searches_and_loads(client, mlflow, exp_id, uri, X, n_versions, n_runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    home = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    (home / "mlflow").mkdir()
    os.chdir(home / "mlflow")  # MLflow puts its default artifact folder under the cwd
    ferrostore = ferrostore_side(home / "ferrostore", args.versions, args.runs)
    try:
        import mlflow  # noqa: F401
    except ImportError:
        print("mlflow is not installed (pip install mlflow-skinny): ferrostore times only")
        peer: Side | None = None
    else:
        peer = mlflow_side(home / "mlflow", args.versions, args.runs)
    print(f"\nregistry side by side ({sys.platform}, {os.cpu_count()} cpus; median ms)\n")
    print(
        "| operation | ferrostore | MLflow (SQLite) | ratio | ratio by round |\n"
        "|---|---:|---:|---:|---:|"
    )
    for op in ferrostore:
        other = next(peer) if peer is not None else None
        if other is not None and other.name != op.name:
            raise AssertionError(f"sides out of step: {op.name!r} vs {other.name!r}")
        times = _take_turns(op, other)
        fs_ms = statistics.median(itertools.chain(*times[0])) * 1e3
        if len(times) == 1:
            print(f"| {op.name} | {fs_ms:.2f} | n/a | n/a | n/a |")
            continue
        ml_ms = statistics.median(itertools.chain(*times[1])) * 1e3
        rounds = sorted(
            statistics.median(m) / statistics.median(f)
            for f, m in zip(times[0], times[1], strict=True)
        )
        print(
            f"| {op.name} | {fs_ms:.2f} | {ml_ms:.2f} | {ml_ms / fs_ms:.1f}x "
            f"| {rounds[0]:.1f}x to {rounds[-1]:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
