"""ferrostore.registry: tracking, models, the registry, history, bad input, concurrency."""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ferrostore.registry as mlflow
from ferrostore import errors
from ferrostore.registry import Client as MlflowClient
from ferrostore.registry import tracking

sklearn_linear = pytest.importorskip("sklearn.linear_model")

N_PROCS = 8
N_METRICS = 25
N_VERSIONS = 5
TIMEOUT_S = 120


def _use(uri: str, artifact_root: str) -> None:
    os.environ[tracking.ARTIFACT_ROOT_ENV] = artifact_root
    tracking._reset_for_tests()
    mlflow.set_tracking_uri(uri)


@pytest.fixture
def uri(metadata_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(tracking.ARTIFACT_ROOT_ENV, str(tmp_path / "artifacts"))
    tracking._reset_for_tests()
    mlflow.set_tracking_uri(metadata_url)
    yield metadata_url
    while mlflow.active_run() is not None:
        mlflow.end_run()
    tracking._reset_for_tests()


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"amount": rng.normal(size=60), "count": rng.normal(size=60)})
    return X, (X["amount"] + X["count"] > 0).astype(int)


def _train_run(data: tuple[pd.DataFrame, pd.Series], *, name: str = "model") -> str:
    X, y = data
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_params({"C": 1.0})
        model = sklearn_linear.LogisticRegression().fit(X, y)
        mlflow.sklearn.log_model(model, name=name, input_example=X.head(3))
    return run.info.run_id


# ------------------------------------------------------------------------------ tracking


def test_run_lifecycle_status_and_nesting(uri: str) -> None:
    with mlflow.start_run(run_name="outer", tags={"team": "fraud"}) as run:
        assert run.info.status == "RUNNING"
        assert mlflow.active_run() is run
        with pytest.raises(errors.InvalidArgument, match="already active"):
            mlflow.start_run()
        with mlflow.start_run(run_name="inner", nested=True) as child:
            assert child.data.tags["mlflow.parentRunId"] == run.info.run_id
        assert mlflow.active_run() is run
    assert mlflow.active_run() is None
    done = mlflow.get_run(run.info.run_id)
    assert done.info.status == "FINISHED" and done.info.end_time is not None
    assert done.info.run_name == "outer" and done.data.tags["team"] == "fraud"

    with pytest.raises(RuntimeError), mlflow.start_run() as failing:
        raise RuntimeError("boom")
    assert mlflow.get_run(failing.info.run_id).info.status == "FAILED"

    mlflow.start_run()
    mlflow.end_run("KILLED")
    assert mlflow.last_active_run().info.status == "KILLED"  # type: ignore[union-attr]
    mlflow.end_run()  # no active run: no-op


def test_experiments(uri: str) -> None:
    exp_id = mlflow.create_experiment("churn", tags={"owner": "ml"})
    with pytest.raises(errors.AlreadyExists, match="churn"):
        mlflow.create_experiment("churn")
    assert mlflow.get_experiment_by_name("churn").experiment_id == exp_id  # type: ignore[union-attr]
    assert mlflow.get_experiment_by_name("nope") is None
    exp = mlflow.set_experiment("fresh")
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == exp.experiment_id
    assert mlflow.get_experiment(exp_id).tags == {"owner": "ml"}
    with pytest.raises(errors.NotFound, match="'999'"):
        mlflow.get_experiment("999")


def test_params_are_write_once(uri: str) -> None:
    with mlflow.start_run() as run:
        assert mlflow.log_param("lr", 0.1) == 0.1
        mlflow.log_param("lr", 0.1)  # same value again: fine
        with pytest.raises(errors.AlreadyExists, match=r"'lr'.*0\.2"):
            mlflow.log_params({"depth": 3, "lr": 0.2})
    params = mlflow.get_run(run.info.run_id).data.params
    assert params == {"lr": "0.1"}  # the failed batch wrote nothing, not even 'depth'


def test_metrics_history_latest_and_nan(uri: str) -> None:
    client = MlflowClient()
    with mlflow.start_run() as run:
        for step in (0, 2, 1):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.5, "auc": 0.7}, step=1)
        mlflow.log_metric("acc", float("nan"), step=2)
        with pytest.raises(errors.InvalidArgument, match="'oops'"):
            mlflow.log_metric("bad", "oops")  # type: ignore[arg-type]
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["loss"] == pytest.approx(1 / 3)
    assert math.isnan(metrics["acc"]) and metrics["auc"] == 0.7
    acc = client.get_metric_history(run.info.run_id, "acc")
    assert acc[0].value == 0.5 and math.isnan(acc[1].value)
    assert "bad" not in metrics
    points = [mlflow.Metric("big", 0.1 * i, 7, i) for i in range(250)]  # several statements
    points[100] = mlflow.Metric("big", float("nan"), 7, 100)
    client.log_batch(run.info.run_id, points[::-1])
    big = client.get_metric_history(run.info.run_id, "big")
    assert [m.step for m in big] == list(range(250)) and math.isnan(big[100].value)
    assert [m.value for m in big[:100]] == [0.1 * i for i in range(100)]
    assert mlflow.get_run(run.info.run_id).data.metrics["big"] == 0.1 * 249


def test_latest_metric_of_one_batch_is_greatest_step_then_timestamp(uri: str) -> None:
    client = MlflowClient()
    with mlflow.start_run() as run:
        points = [
            mlflow.Metric("m", 1.0, 20, 3),
            mlflow.Metric("m", 2.0, 10, 5),
            mlflow.Metric("m", 3.0, 30, 5),  # same step, later: the latest
            mlflow.Metric("m", 4.0, 5, 5),  # same step, earlier
            mlflow.Metric("m", 5.0, 99, 4),  # later time, lower step
            mlflow.Metric("n", float("nan"), 1, 0),
        ]
        client.log_batch(run.info.run_id, points)
        client.log_batch(run.info.run_id, [mlflow.Metric("m", 6.0, 30, 5)])  # tie: it wins
        client.log_batch(run.info.run_id, [mlflow.Metric("m", 7.0, 29, 5)])  # older: kept out
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["m"] == 6.0 and math.isnan(metrics["n"])
    assert len(client.get_metric_history(run.info.run_id, "m")) == 7


def test_metric_is_a_frozen_dataclass() -> None:
    import dataclasses

    point = mlflow.Metric("loss", 0.5, 7, 1)
    assert point == mlflow.Metric(key="loss", value=0.5, timestamp=7, step=1)
    assert hash(point) == hash(mlflow.Metric("loss", 0.5, 7, 1))
    assert dataclasses.astuple(point) == ("loss", 0.5, 7, 1)
    assert dataclasses.replace(point, step=2).step == 2
    assert repr(point) == "Metric(key='loss', value=0.5, timestamp=7, step=1)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.value = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        mlflow.Metric("loss", 0.5, 7)  # type: ignore[call-arg]
    assert not hasattr(point, "__dict__")


def test_artifacts_are_content_addressed(uri: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("same")
    (src / "sub" / "b.txt").write_text("same")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(src, "data")
        mlflow.log_artifact(src / "a.txt")
        with pytest.raises(errors.NotFound, match=r"missing\.txt"):
            mlflow.log_artifact(src / "missing.txt")
        with pytest.raises(errors.InvalidArgument, match=r"\.\."):
            mlflow.log_artifact(src / "a.txt", "../escape")
    client = MlflowClient()
    listing = client.list_artifacts(run.info.run_id)
    assert [(f.path, f.is_dir) for f in listing] == [("a.txt", False), ("data", True)]
    objects = list((tmp_path / "artifacts" / "objects").rglob("*"))
    if uri.startswith("postgresql"):
        assert len([p for p in objects if p.is_file()]) == 1
    local = Path(client.download_artifacts(run.info.run_id, "data", tmp_path / "out"))
    assert (local / "sub" / "b.txt").read_text() == "same"


def test_search_runs(uri: str) -> None:
    exp_id = mlflow.create_experiment("search")
    for i in range(6):
        with mlflow.start_run(experiment_id=exp_id, run_name=f"r{i}") as run:
            mlflow.log_metric("acc", i / 10)
            mlflow.log_param("model", "xgb" if i % 2 else "lr")
            mlflow.set_tag("team", "Fraud" if i < 3 else "risk")
        if i == 5:
            last = run.info.run_id
    with mlflow.start_run(experiment_id=exp_id, run_name="nan"):
        mlflow.log_metric("acc", float("nan"))

    df = mlflow.search_runs(
        [exp_id], "metrics.acc > 0.15 AND params.model = 'xgb'", order_by=["metrics.acc DESC"]
    )
    assert isinstance(df, pd.DataFrame)
    assert list(df["metrics.acc"]) == [0.5, 0.3]
    assert {"run_id", "status", "start_time", "params.model", "tags.team"} <= set(df.columns)
    assert df["run_id"][0] == last
    names = lambda f, **kw: [r.info.run_name for r in mlflow.search_runs(  # noqa: E731
        [exp_id], f, output_format="list", **kw)]  # fmt: skip
    assert sorted(names("tags.team LIKE 'F%'")) == ["r0", "r1", "r2"]
    assert names("tags.team LIKE 'f%'") == []  # LIKE is case-sensitive on every backend
    assert len(names("tags.team ILIKE 'f%'")) == 3
    assert names("attributes.run_name IN ('r1', 'r4')", order_by=["attributes.run_name"]) == [
        "r1",
        "r4",
    ]
    assert names("attributes.status = 'FINISHED' AND metrics.acc >= 0", max_results=2) != []
    assert len(names("", max_results=3)) == 3
    assert names("attributes.run_name != 'nan'", order_by=["metrics.acc ASC"])[0] == "r0"
    for bad in ("metrics.acc >", "metrics.acc > 'x'", "nope.x = 1", "run_name = 'a' OR x = 1",
                "attributes.color = 'x'", "params.p = 3"):  # fmt: skip
        with pytest.raises(errors.InvalidArgument):
            mlflow.search_runs([exp_id], bad)
    with pytest.raises(errors.InvalidArgument, match="order_by"):
        mlflow.search_runs([exp_id], order_by=["attributes.color"])


def test_search_runs_frame_matches_runs(uri: str) -> None:
    exp_id = mlflow.create_experiment("frame")
    client = MlflowClient()
    for i in range(4):
        run = client.create_run(exp_id, start_time=1_000 + i, run_name=f"r{i}")
        metrics = [mlflow.Metric("acc", i / 10, 1, 0), mlflow.Metric(f"m{i}", 1.0, 1, 0)]
        params = [mlflow.Param("model", "xgb" if i % 2 else "lr")] if i else []
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        if i == 3:
            client.set_terminated(run.info.run_id)
    text = "metrics.acc >= 0.1 AND metrics.acc < 0.3"
    runs = mlflow.search_runs([exp_id], text, output_format="list")
    df = mlflow.search_runs([exp_id], text)
    assert [r.info.run_name for r in runs] == ["r2", "r1"]
    assert list(df["run_id"]) == [r.info.run_id for r in runs]
    assert list(df.columns[:6]) == [
        "run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"
    ]  # fmt: skip
    assert list(df["metrics.acc"]) == [0.2, 0.1]
    assert df["metrics.m1"].isna().tolist() == [True, False]
    assert list(df["params.model"]) == ["lr", "xgb"]
    assert df["end_time"].isna().all() and str(df["start_time"].dtype) == "datetime64[ns, UTC]"
    everything = mlflow.search_runs([exp_id], output_format="list")
    assert [r.data.metrics for r in everything] == [
        mlflow.get_run(r.info.run_id).data.metrics for r in everything
    ]
    assert everything[0].info.status == "FINISHED" and not everything[-1].data.params


def test_search_runs_with_several_data_filters_probes_runs_last(tmp_path: Path) -> None:
    """On SQLite the runs table is searched after every filter's data table (fewer probes),
    and the join keeps exactly the runs every filter and attribute condition accepts."""
    import sqlite3

    from ferrostore.registry import store as run_store

    _use(f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "artifacts"))
    exp_id = mlflow.create_experiment("plans")
    client = MlflowClient()
    expected = []
    for i in range(24):
        run = client.create_run(exp_id, start_time=1_000 + i, run_name=f"r{i}")
        client.log_batch(
            run.info.run_id,
            metrics=[mlflow.Metric("acc", i / 24, 1, 0)],
            params=[mlflow.Param("model", "xgb" if i % 2 else "lr")],
            tags=[mlflow.RunTag("team", "a" if i % 3 else "b")],
        )
        if i % 4 != 0:
            client.set_terminated(run.info.run_id)
        if i / 24 > 0.25 and i % 2 and i % 3 and i % 4:
            expected.append(f"r{i}")
    text = (
        "metrics.acc > 0.25 AND params.model = 'xgb' AND tags.team = 'a' "
        "AND attributes.status = 'FINISHED'"
    )
    runs = mlflow.search_runs([exp_id], text, order_by=["metrics.acc"], output_format="list")
    assert [r.info.run_name for r in runs] == expected and expected

    query = run_store._run_query(
        (exp_id,), text, ("metrics.acc",), 10, False, run_store._RUN_INFO_COLUMNS, "sqlite"
    )
    sql, params = run_store._compiled_query(query, "sqlite")
    assert "CROSS JOIN runs" in sql.sqlite
    with sqlite3.connect(tmp_path / "m.db") as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql.sqlite, params)]
    searched = [step.split()[1] for step in plan if step.startswith(("SEARCH", "SCAN"))]
    assert searched.index("runs") > max(searched.index(f) for f in ("f0", "f1", "f2")), plan
    tracking._reset_for_tests()


def test_frame_times_are_utc_datetimes_with_none_as_nat() -> None:
    from ferrostore.registry.store import RunTable

    def row(run_id: str, start: int, end: int | None) -> tuple[Any, ...]:
        return (run_id, "1", "n", "u", "FINISHED", start, end, "active", f"runs:/{run_id}")

    starts = [1_700_000_000_123, 1_700_000_000_999, 5]
    for ends in ([1_700_000_001_001, 7, 8_000_000_000_001], [None, 1_700_000_001_001, None]):
        rows = [row(f"r{i}", s, e) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]
        table = RunTable(rows, {"acc": {1: 0.5}}, {"p": {0: "x"}}, {})
        df = tracking.run_table_to_frame(table)
        expected_end = pd.to_datetime(
            [math.nan if e is None else e for e in ends], unit="ms", utc=True
        )
        assert df["start_time"].equals(pd.Series(pd.to_datetime(starts, unit="ms", utc=True)))
        assert df["end_time"].equals(pd.Series(expected_end, name="end_time"))
        assert str(df["end_time"].dtype) == "datetime64[ns, UTC]"
        assert df["metrics.acc"].isna().tolist() == [True, False, True]
        assert df["params.p"].tolist() == ["x", None, None]
    empty = tracking.run_table_to_frame(RunTable([], {}, {}, {}))
    assert list(empty.columns) == [
        "run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"
    ]  # fmt: skip
    assert empty.empty


def test_tracking_uri_default_env_and_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking._reset_for_tests()
    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert mlflow.get_tracking_uri() == str(tmp_path / ".ferrostore")
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, str(tmp_path / "env"))
    assert mlflow.get_tracking_uri() == str(tmp_path / "env")
    with mlflow.start_run():
        mlflow.log_metric("x", 1)
    assert (tmp_path / "env" / "metadata.db").is_file()
    assert (tmp_path / "env" / "artifacts").is_dir()
    mlflow.set_tracking_uri(tmp_path / "set")
    assert mlflow.get_tracking_uri() == str(tmp_path / "set")
    with pytest.raises(errors.InvalidArgument, match="ftp"):
        mlflow.Client("ftp://x/y").search_registered_models()
    tracking._reset_for_tests()


def test_tracking_uri_resolution_follows_cwd_env_and_new_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Resolutions are cached: each thing an answer depends on must still change it.
    tracking._reset_for_tests()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert tracking._locations("rel") == (
        str(tmp_path / "a" / "rel" / "metadata.db"),
        tmp_path / "a" / "rel" / "artifacts",
    )
    (tmp_path / "a" / "rel").mkdir()
    assert tracking._locations("rel")[0] == str(tmp_path / "a" / "rel" / "metadata.db")
    monkeypatch.chdir(tmp_path / "b")
    assert tracking._locations("rel")[0] == str(tmp_path / "b" / "rel" / "metadata.db")
    # Not there when first asked, then created as a SQLite file without a suffix.
    assert tracking._locations("later")[0] == str(tmp_path / "b" / "later" / "metadata.db")
    (tmp_path / "b" / "later").write_bytes(b"")
    assert tracking._locations("later") == (
        str(tmp_path / "b" / "later"),
        tmp_path / "b" / "artifacts",
    )
    monkeypatch.setenv(tracking.ARTIFACT_ROOT_ENV, str(tmp_path / "art1"))
    assert tracking._locations("sqlite:///x.db")[1] == tmp_path / "art1"
    monkeypatch.setenv(tracking.ARTIFACT_ROOT_ENV, str(tmp_path / "art2"))
    assert tracking._locations("sqlite:///x.db")[1] == tmp_path / "art2"
    monkeypatch.setenv("HOME", str(tmp_path / "home1"))
    assert tracking._locations("~/t")[0] == str(tmp_path / "home1" / "t" / "metadata.db")
    monkeypatch.setenv("HOME", str(tmp_path / "home2"))
    assert tracking._locations("~/t")[0] == str(tmp_path / "home2" / "t" / "metadata.db")
    tracking._reset_for_tests()


def test_current_user_is_the_login_variable_else_the_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import getpass

    from ferrostore.registry.store import current_user

    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(variable, raising=False)
    account = current_user()
    try:
        assert account == getpass.getuser()
    except OSError:  # no account for this user id
        assert account == "unknown"
    monkeypatch.setenv("USERNAME", "fourth")
    assert current_user() == "fourth"
    monkeypatch.setenv("USER", "second")
    assert current_user() == "second"
    monkeypatch.setenv("LOGNAME", "first")
    assert current_user() == "first"


# -------------------------------------------------------------------------------- models


class _Scaler(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        self.factor = float(Path(context.artifacts["factor"]).read_text())

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input["x"] * self.factor


class _NoContext(mlflow.pyfunc.PythonModel):
    def predict(self, model_input: Any, params: Any = None) -> Any:  # type: ignore[override]
        return len(model_input)


def test_pyfunc_model_with_context_and_signature(uri: str, tmp_path: Path) -> None:
    (tmp_path / "factor.txt").write_text("3")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="scaler",
            python_model=_Scaler(),
            artifacts={"factor": str(tmp_path / "factor.txt")},
            signature=mlflow.infer_signature(frame),
        )
        plain = mlflow.pyfunc.log_model("plain", python_model=_NoContext())
    model = mlflow.pyfunc.load_model(info.model_uri)
    assert list(model.predict(frame)) == [3.0, 6.0]
    assert model.metadata["python_version"] and "cloudpickle" in model.metadata["packages"]
    with pytest.raises(errors.SchemaMismatch, match="'x'"):
        model.predict(pd.DataFrame({"y": [1.0]}))
    assert mlflow.pyfunc.load_model(plain.model_uri).predict([1, 2, 3]) == 3
    with pytest.raises(errors.InvalidArgument, match="python_model"), mlflow.start_run():
        mlflow.pyfunc.log_model("bad", python_model=object())


def test_loaded_metadata_is_fresh_and_follows_the_mlmodel_file(uri: str, tmp_path: Path) -> None:
    folder = tmp_path / "local"
    mlflow.pyfunc.save_model(folder, python_model=_NoContext())
    first = mlflow.pyfunc.load_model(folder)
    first.metadata["flavors"]["python_function"]["loader_module"] = "changed"
    assert mlflow.pyfunc.load_model(folder).loader_module == "ferrostore.registry.pyfunc"
    mlmodel = folder / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("run_id: null", "run_id: edited"))
    assert mlflow.pyfunc.load_model(folder).metadata["run_id"] == "edited"


def test_sklearn_model_roundtrip(uri: str, data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, _ = data
    run_id = _train_run(data)
    est = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    wrapped = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert list(wrapped.predict(X)) == list(est.predict(X))
    flavor = wrapped.metadata["flavors"]["sklearn"]
    assert flavor["sklearn_version"] and wrapped.metadata["signature"]["inputs"][0]["name"]
    assert "scikit-learn" in wrapped.metadata["packages"]


# ------------------------------------------------------------------------------ registry


def test_lesson_model_registry_example_verbatim(
    uri: str, data: tuple[pd.DataFrame, pd.Series], capsys: pytest.CaptureFixture[str]
) -> None:
    test_features, _ = data
    run_id_of_training = _train_run(data)

    # --- the lesson's example; only the imports changed and run_id is a real run ---
    import ferrostore.registry as mlflow
    from ferrostore.registry import Client as MlflowClient

    client = MlflowClient()

    # Register a model from a training run
    model_name = "fraud-detector"
    run_id = run_id_of_training

    # Register version 1
    result = mlflow.register_model(
        model_uri=f"runs:/{run_id}/model",
        name=model_name
    )  # fmt: skip
    print(f"Registered {model_name} v{result.version}")

    # Add description and tags
    client.update_model_version(
        name=model_name,
        version=result.version,
        description="XGBoost fraud classifier trained on 2024-Q1 data"
    )  # fmt: skip
    client.set_model_version_tag(
        name=model_name, version=result.version,
        key="training_dataset", value="fraud_2024_q1"
    )  # fmt: skip
    client.set_model_version_tag(
        name=model_name, version=result.version,
        key="accuracy", value="0.956"
    )  # fmt: skip

    # Promote through stages
    client.transition_model_version_stage(name=model_name, version=result.version, stage="Staging")
    print(f"Moved v{result.version} to Staging")

    # After validation...
    client.transition_model_version_stage(
        name=model_name, version=result.version, stage="Production"
    )
    print(f"Promoted v{result.version} to Production!")

    # Load the production model for serving
    prod_model = mlflow.pyfunc.load_model(f"models:/{model_name}/Production")
    prediction = prod_model.predict(test_features)
    # --- end of the lesson's example ---

    out = capsys.readouterr().out
    assert "Registered fraud-detector v1" in out and "Promoted v1 to Production!" in out
    assert len(prediction) == len(test_features)
    mv = client.get_model_version(model_name, 1)
    assert mv.current_stage == "Production" and mv.tags["accuracy"] == "0.956"
    assert mv.description.startswith("XGBoost")  # type: ignore[union-attr]


def test_versions_stages_aliases_and_uris(uri: str, data: tuple[pd.DataFrame, pd.Series]) -> None:
    client = MlflowClient()
    run_id = _train_run(data)
    source = f"runs:/{run_id}/model"
    client.create_registered_model("m", tags={"team": "fraud"}, description="d")
    with pytest.raises(errors.AlreadyExists, match="'m'"):
        client.create_registered_model("m")
    versions = [client.create_model_version("m", source, run_id=run_id).version for _ in range(3)]
    assert versions == [1, 2, 3]
    client.transition_model_version_stage("m", 1, "production")
    client.transition_model_version_stage("m", 2, "Production")
    assert {v.version for v in client.search_model_versions("current_stage = 'Production'")} == {
        1,
        2,
    }
    client.transition_model_version_stage("m", 3, "Production", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions("name = 'm'")}
    assert stages == {1: "Archived", 2: "Archived", 3: "Production"}
    latest = client.get_latest_versions("m")
    assert {(v.current_stage, v.version) for v in latest} == {("Archived", 2), ("Production", 3)}

    client.set_registered_model_alias("m", "champion", 2)
    client.set_registered_model_alias("m", "champion", 3)  # a move
    assert client.get_model_version_by_alias("m", "champion").version == 3
    assert client.get_registered_model("m").aliases == {"champion": 3}
    assert client.get_model_version("m", 3).aliases == ["champion"]
    for ref in ("models:/m/3", "models:/m/Production", "models:/m@champion", "models:/m/latest"):
        assert mlflow.pyfunc.load_model(ref).metadata["run_id"] == run_id
    client.delete_registered_model_alias("m", "champion")
    with pytest.raises(errors.NotFound, match="champion"):
        client.get_model_version_by_alias("m", "champion")

    client.set_registered_model_tag("m", "owner", "ana")
    client.set_model_version_tag("m", 1, "k", "v")
    client.delete_model_version_tag("m", 1, "k")
    assert client.get_model_version("m", 1).tags == {}
    assert client.get_registered_model("m").tags == {"team": "fraud", "owner": "ana"}

    client.delete_model_version("m", 3)
    assert client.create_model_version("m", source).version == 4  # 3 is never reused
    copied = client.copy_model_version("models:/m/1", "m-copy")
    assert (copied.name, copied.version, copied.source) == ("m-copy", 1, source)
    assert [r.name for r in client.search_registered_models("name LIKE 'm%'")] == ["m", "m-copy"]
    assert [r.name for r in client.search_registered_models("tags.team = 'fraud'")] == ["m"]
    found = client.search_model_versions(f"name = 'm' AND run_id IN ('{run_id}', 'x')")
    assert [v.version for v in found] == [4, 2, 1]
    assert [v.version for v in client.search_model_versions("version_number >= 2 AND name ILIKE 'M'")] == [4, 2]  # fmt: skip # noqa: E501
    client.delete_registered_model("m")
    with pytest.raises(errors.NotFound, match="'m'"):
        client.get_registered_model("m")
    client.create_registered_model("m")
    assert client.create_model_version("m", source).version == 5


def test_history_who_approved_and_stage_at(uri: str, data: tuple[pd.DataFrame, pd.Series]) -> None:
    client = MlflowClient()
    run_id = _train_run(data)
    mv1 = mlflow.register_model(f"runs:/{run_id}/model", "h")
    client.transition_model_version_stage("h", 1, "Production", approved_by="alice")
    time.sleep(0.02)
    between = dt.datetime.now(dt.UTC)
    time.sleep(0.02)
    mlflow.register_model(f"runs:/{run_id}/model", "h")
    client.transition_model_version_stage(
        "h", 2, "Production", archive_existing_versions=True, approved_by="bob"
    )
    client.set_registered_model_alias("h", "champion", 2, approved_by="carol")

    then = client.get_stage_at("h", "Production", between)
    assert [(a.version, a.approved_by) for a in then] == [(1, "alice")]
    now = client.get_stage_at("h", "production", dt.datetime.now(dt.UTC))
    assert [(a.version, a.approved_by) for a in now] == [(2, "bob")]
    assert client.get_stage_at("h", "Production", mv1.creation_timestamp - 1) == []
    events = client.get_model_version_history("h")
    kinds = [(e.version, e.kind, e.to_stage, e.alias, e.approved_by) for e in events]
    assert (1, "stage", "Archived", None, "bob") in kinds
    assert kinds[-1] == (2, "alias_set", None, "champion", "carol")
    assert [e.kind for e in client.get_model_version_history("h", 1)] == [
        "created",
        "stage",
        "stage",
    ]
    client.delete_model_version("h", 2)
    assert client.get_stage_at("h", "Production", dt.datetime.now(dt.UTC)) == []
    assert client.get_model_version_history("h")[-1].kind == "deleted"


def test_model_evaluations(uri: str, data: tuple[pd.DataFrame, pd.Series]) -> None:
    client = MlflowClient()
    run_id = _train_run(data)
    for _ in range(2):
        mlflow.register_model(f"runs:/{run_id}/model", "ev")
    mlflow.log_model_evaluation("ev", 1, {"auc": 0.9, "f1": 0.8}, dataset="holdout-q1")
    client.log_model_evaluation("ev", 2, {"auc": 0.93, "f1": float("nan")}, dataset="holdout-q1")
    client.log_model_evaluation("ev", 2, {"auc": 0.5}, dataset="other")
    assert [e.metrics["auc"] for e in client.list_model_evaluations("ev", 2)] == [0.93, 0.5]
    table = client.compare_model_evaluations("ev", dataset="holdout-q1")
    assert list(table["version"]) == [1, 2] and list(table["auc"]) == [0.9, 0.93]
    assert math.isnan(table["f1"][1])
    with pytest.raises(errors.NotFound, match="version 9"):
        client.log_model_evaluation("ev", 9, {"auc": 1.0})
    with pytest.raises(errors.InvalidArgument, match="metrics"):
        client.log_model_evaluation("ev", 1, {})


def test_bad_input_is_a_clear_error_and_changes_nothing(
    uri: str, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    client = MlflowClient()
    run_id = _train_run(data)
    mlflow.register_model(f"runs:/{run_id}/model", "b")
    before = client.get_model_version_history("b")

    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: client.get_registered_model("ghost"), errors.NotFound, "'ghost'"),
        (lambda: client.get_model_version("b", 7), errors.NotFound, "version 7"),
        (lambda: client.get_model_version("ghost", 1), errors.NotFound, "'ghost'"),
        (lambda: client.get_model_version("b", "x"), errors.InvalidArgument, "'x'"),
        (lambda: client.get_model_version_by_alias("b", "nope"), errors.NotFound, "'nope'"),
        (lambda: client.transition_model_version_stage("b", 1, "Prod"), errors.InvalidArgument,
         "'Prod'"),
        (lambda: client.transition_model_version_stage("b", 2, "Staging"), errors.NotFound,
         "version 2"),
        (lambda: client.set_registered_model_alias("b", "latest", 1), errors.InvalidArgument,
         "'latest'"),
        (lambda: client.set_registered_model_alias("b", "v12", 1), errors.InvalidArgument,
         "'v12'"),
        (lambda: client.set_registered_model_alias("b", "champ", 5), errors.NotFound,
         "version 5"),
        (lambda: client.search_model_versions("name = "), errors.InvalidArgument, "name = "),
        (lambda: client.search_model_versions("color = 'x'"), errors.InvalidArgument, "color"),
        (lambda: client.search_registered_models("name == 'x'"), errors.InvalidArgument,
         "name == "),
        (lambda: mlflow.register_model("runs:/" + "0" * 32 + "/model", "b"), errors.NotFound,
         "0" * 32),
        (lambda: mlflow.register_model(f"runs:/{run_id}/nomodel", "b"), errors.NotFound,
         "nomodel"),
        (lambda: mlflow.register_model("s3://bucket/model", "b"), errors.InvalidArgument,
         "s3://"),
        (lambda: mlflow.pyfunc.load_model("models:/b/9"), errors.NotFound, "version 9"),
        (lambda: mlflow.pyfunc.load_model("models:/b/Staging"), errors.NotFound, "Staging"),
        (lambda: mlflow.pyfunc.load_model("models:/b/Bogus"), errors.InvalidArgument, "Bogus"),
        (lambda: mlflow.pyfunc.load_model("models:/b@gone"), errors.NotFound, "gone"),
        (lambda: mlflow.pyfunc.load_model("models:/ghost/1"), errors.NotFound, "ghost"),
        (lambda: mlflow.pyfunc.load_model("runs:/abc/model"), errors.InvalidArgument, "abc"),
        (lambda: client.delete_registered_model_alias("b", "none"), errors.NotFound, "'none'"),
        (lambda: client.delete_model_version("b", 3), errors.NotFound, "version 3"),
    ]  # fmt: skip
    for call, error, named in cases:
        with pytest.raises(error) as info:
            call()
        assert named in str(info.value), (named, str(info.value))
    assert client.get_model_version_history("b") == before
    assert client.get_model_version("b", 1).current_stage == "None"
    assert client.create_model_version("b", f"runs:/{run_id}/model").version == 2


# --------------------------------------------------------------------------- concurrency


def _worker(
    kind: str, uri: str, artifact_root: str, arg: str, index: int, start: Any, results: Any
) -> None:
    try:
        _use(uri, artifact_root)
        client = MlflowClient()
        start.wait(TIMEOUT_S)
        if kind == "metrics_and_versions":
            got = []
            for i in range(N_METRICS):
                client.log_metric(arg, "m", float(index * 1000 + i), step=i)
                if i % (N_METRICS // N_VERSIONS) == 0:
                    got.append(mlflow.register_model(f"runs:/{arg}/model", "race").version)
            results.put(("ok", got))
        else:
            for _ in range(3):
                client.transition_model_version_stage(
                    "promo", index + 1, "Production", archive_existing_versions=True
                )
            results.put(("ok", []))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _write_elsewhere(uri: str, artifact_root: str, exp_id: str, source: str) -> None:
    _use(uri, artifact_root)
    with mlflow.start_run(experiment_id=exp_id, run_name="other"):
        mlflow.log_metric("acc", 0.99)
    version = mlflow.register_model(source, "seen", tags={"shard": "7"}).version
    MlflowClient().transition_model_version_stage("seen", version, "Staging")


def test_repeated_searches_see_another_process_writes(
    uri: str, tmp_path: Path, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    run_id = _train_run(data)
    exp_id = mlflow.create_experiment("elsewhere")
    client = MlflowClient()
    mlflow.register_model(f"runs:/{run_id}/model", "seen", tags={"shard": "7"})
    runs_query, versions_query = "metrics.acc > 0.5", "name = 'seen' AND tags.shard = '7'"
    assert len(mlflow.search_runs([exp_id], runs_query)) == 0
    assert [v.version for v in client.search_model_versions(versions_query)] == [1]
    ctx = multiprocessing.get_context("spawn")
    args = (uri, str(tmp_path / "artifacts"), exp_id, f"runs:/{run_id}/model")
    proc = ctx.Process(target=_write_elsewhere, args=args)
    proc.start()
    proc.join(TIMEOUT_S)
    assert proc.exitcode == 0
    assert list(mlflow.search_runs([exp_id], runs_query)["metrics.acc"]) == [0.99]
    found = client.search_model_versions(versions_query)
    assert [(v.version, v.current_stage) for v in found] == [(2, "Staging"), (1, "None")]
    assert len(mlflow.search_runs([exp_id], runs_query, max_results=1)) == 1
    with pytest.raises(errors.InvalidArgument):  # equal to 1, yet not a cached query's key
        mlflow.search_runs([exp_id], runs_query, max_results=True)


def _run_workers(kind: str, uri: str, artifact_root: str, arg: str) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(kind, uri, artifact_root, arg, i, start, results))
        for i in range(N_PROCS)
    ]
    for proc in procs:
        proc.start()
    start.set()
    out = [results.get(timeout=TIMEOUT_S) for _ in procs]
    for proc in procs:
        proc.join(TIMEOUT_S)
        assert proc.exitcode == 0
    errors_seen = [payload for status, payload in out if status != "ok"]
    assert not errors_seen, errors_seen[0]
    return [payload for _, payload in out]


@pytest.mark.slow
def test_eight_processes_log_and_register_at_once(
    uri: str, tmp_path: Path, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    run_id = _train_run(data)
    versions = _run_workers("metrics_and_versions", uri, str(tmp_path / "artifacts"), run_id)
    numbers = sorted(v for got in versions for v in got)
    assert numbers == list(range(1, N_PROCS * N_VERSIONS + 1))
    history = MlflowClient().get_metric_history(run_id, "m")
    assert len(history) == N_PROCS * N_METRICS
    assert {m.value for m in history} == {
        float(p * 1000 + i) for p in range(N_PROCS) for i in range(N_METRICS)
    }
    assert mlflow.get_run(run_id).data.metrics["m"] % 1000 == N_METRICS - 1


@pytest.mark.slow
def test_racing_archive_existing_leaves_one_in_production(
    uri: str, tmp_path: Path, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    run_id = _train_run(data)
    for _ in range(N_PROCS):
        mlflow.register_model(f"runs:/{run_id}/model", "promo")
    _run_workers("promote", uri, str(tmp_path / "artifacts"), run_id)
    prod = MlflowClient().search_model_versions("name = 'promo' AND current_stage = 'Production'")
    assert len(prod) == 1
    now = MlflowClient().get_stage_at("promo", "Production", dt.datetime.now(dt.UTC))
    assert [a.version for a in now] == [prod[0].version]
