"""Tracking and registry calls: ferrostore.registry vs MLflow (SQLite backend), same operations.

Run: ``python benches/registry_side_by_side.py [--versions 10000] [--runs 10000]``.

Both sides use a fresh SQLite file in a temporary folder. The 10,000 model versions and
10,000 runs searched over are bulk-inserted into each system's own tables (setup, not
timed); every timed operation goes through the public API. Times are medians of repeats;
ratios are MLflow time / ferrostore time (higher = ferrostore faster). ``load_model`` is
timed alone (both load the pickle eagerly) and with a 5-row predict, whose scikit-learn
time is the same on both sides. Needs scikit-learn;
MLflow is optional (``pip install mlflow-skinny`` is enough for its SQLite store).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

N_PARAMS = 10
N_POINTS = 1000


def _median(fn: Callable[[int], Any], repeats: int) -> float:
    fn(-1)  # warm-up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def bench_ferrostore(folder: Path, n_versions: int, n_runs: int) -> dict[str, float]:
    import ferrostore.registry as fs
    from ferrostore.registry import Client, Metric
    from ferrostore.registry.tracking import store_for

    fs.set_tracking_uri(folder)
    client = Client()
    model, X = _model()
    params = {f"p{i}": i for i in range(N_PARAMS)}
    out: dict[str, float] = {}

    def run_with_metrics(_: int) -> None:
        with fs.start_run() as run:
            fs.log_params(params)
            now = int(time.time() * 1000)
            client.log_batch(
                run.info.run_id, [Metric("loss", 1.0 / (s + 1), now, s) for s in range(N_POINTS)]
            )

    out["run: 10 params + 1,000 metric points"] = _median(run_with_metrics, 5)

    with fs.start_run() as run:
        fs.sklearn.log_model(model, name="model")
    uri = f"runs:/{run.info.run_id}/model"
    versions: list[int] = []
    out["register_model"] = _median(
        lambda _: versions.append(fs.register_model(uri, "reg").version), 20
    )
    out["stage transition"] = _median(
        lambda i: client.transition_model_version_stage("reg", versions[i + 1], "Staging"), 20
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

    found: list[int] = []
    out[f"search_model_versions ({n_versions:,} versions)"] = _median(
        lambda _: found.append(
            len(client.search_model_versions("name = 'bench' AND tags.shard = '42'"))
        ),
        5,
    )
    assert found[-1] == n_versions // 1000, found[-1]
    rows: list[int] = []
    out[f"search_runs ({n_runs:,} runs)"] = _median(
        lambda _: rows.append(
            len(fs.search_runs([exp_id], "metrics.acc > 0.9 AND params.model = 'xgb'"))
        ),
        7,
    )
    out["load_model (scikit-learn)"] = _median(lambda _: fs.pyfunc.load_model(uri), 10)
    out["load_model + predict (5 rows)"] = _median(
        lambda _: fs.pyfunc.load_model(uri).predict(X.head(5)), 10
    )
    out["_search_runs_rows"] = float(rows[-1])
    return out


def bench_mlflow(folder: Path, n_versions: int, n_runs: int) -> dict[str, float]:
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
    out: dict[str, float] = {}

    def run_with_metrics(_: int) -> None:
        with mlflow.start_run() as run:
            mlflow.log_params(params)
            now = int(time.time() * 1000)
            client.log_batch(
                run.info.run_id,
                metrics=[Metric("loss", 1.0 / (s + 1), now, s) for s in range(N_POINTS)],
            )

    out["run: 10 params + 1,000 metric points"] = _median(run_with_metrics, 5)

    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    uri = f"runs:/{run.info.run_id}/model"
    versions: list[int] = []
    out["register_model"] = _median(
        lambda _: versions.append(int(mlflow.register_model(uri, "reg").version)), 20
    )
    out["stage transition"] = _median(
        lambda i: client.transition_model_version_stage("reg", versions[i + 1], "Staging"), 20
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

    found: list[int] = []
    out[f"search_model_versions ({n_versions:,} versions)"] = _median(
        lambda _: found.append(
            len(client.search_model_versions("name = 'bench' AND tags.shard = '42'"))
        ),
        5,
    )
    assert found[-1] == n_versions // 1000, found[-1]
    rows: list[int] = []
    out[f"search_runs ({n_runs:,} runs)"] = _median(
        lambda _: rows.append(
            len(mlflow.search_runs([exp_id], "metrics.acc > 0.9 AND params.model = 'xgb'"))
        ),
        7,
    )
    out["load_model (scikit-learn)"] = _median(lambda _: mlflow.pyfunc.load_model(uri), 10)
    out["load_model + predict (5 rows)"] = _median(
        lambda _: mlflow.pyfunc.load_model(uri).predict(X.head(5)), 10
    )
    out["_search_runs_rows"] = float(rows[-1])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    home = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    os.chdir(home)
    fs_times = bench_ferrostore(home / "ferrostore", args.versions, args.runs)
    try:
        import mlflow  # noqa: F401
    except ImportError:
        print("mlflow is not installed (pip install mlflow-skinny): ferrostore times only")
        ml_times: dict[str, float] = {}
    else:
        (home / "mlflow").mkdir()
        os.chdir(home / "mlflow")
        ml_times = bench_mlflow(home / "mlflow", args.versions, args.runs)
    if ml_times:
        assert fs_times["_search_runs_rows"] == ml_times["_search_runs_rows"]
    print(f"\nregistry side by side ({sys.platform}, {os.cpu_count()} cpus; median ms)\n")
    print("| operation | ferrostore | MLflow (SQLite) | ratio |\n|---|---:|---:|---:|")
    for op, fs_s in fs_times.items():
        if op.startswith("_"):
            continue
        ml_s = ml_times.get(op)
        ml = f"{ml_s * 1e3:.2f}" if ml_s is not None else "n/a"
        ratio = f"{ml_s / fs_s:.1f}x" if ml_s is not None else "n/a"
        print(f"| {op} | {fs_s * 1e3:.2f} | {ml} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
