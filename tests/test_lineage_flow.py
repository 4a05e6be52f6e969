"""Lineage recorded on its own by the feature store and the registry; the four questions."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ferrostore.cli import main
from ferrostore.errors import InvalidArgument, NotFound
from ferrostore.lineage import Direction, MetadataStore
from ferrostore.lineage.questions import serving, uses, why
from ferrostore.lineage.recording import TRAINING_SET_TAG
from ferrostore.metadata import MetadataDB
from ferrostore.metadata.db import SQL, DriverConnection

sklearn = pytest.importorskip("sklearn.linear_model")

REFS = [
    "customer_transactions:total_transactions_30d",
    "customer_transactions:avg_transaction_amount_30d",
]
MODEL = "fraud-detector"


@pytest.fixture
def flow(metadata_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The lesson's flow on one metadata database: features, training set, run, promotions."""
    import ferrostore.registry as mlflow
    from ferrostore.features import FeatureStore
    from ferrostore.features.repo_discovery import discover_objects
    from ferrostore.features.scaffold import init_repo
    from ferrostore.registry import Client, tracking

    repo = init_repo(tmp_path / "repo", customers=20)
    with (repo / "feature_store.yaml").open("a") as config:
        config.write(f"registry: {metadata_url}\n")
    tracking._reset_for_tests()
    mlflow.set_tracking_uri(metadata_url)
    store = FeatureStore(repo_path=repo)
    store.apply(discover_objects(repo), partial=False)
    entity_df = pd.DataFrame(
        {
            "customer_id": list(range(1001, 1021)),
            "event_timestamp": pd.to_datetime(["2024-01-15"] * 20),
        }
    )
    mlflow.set_experiment("fraud")
    with mlflow.start_run(run_name="train-fraud") as run:
        job = store.get_historical_features(entity_df=entity_df, features=REFS)
        frame = job.to_df().fillna(0)
        X = frame[["total_transactions_30d", "avg_transaction_amount_30d"]]
        y = (frame["customer_id"] % 2).to_numpy()
        model = sklearn.LogisticRegression().fit(X, y)
        info = mlflow.sklearn.log_model(model, name="model")
    version = mlflow.register_model(info.model_uri, MODEL)
    client = Client()
    client.transition_model_version_stage(MODEL, version.version, "Staging")
    client.transition_model_version_stage(MODEL, version.version, "Production")
    client.set_registered_model_alias(MODEL, "champion", version.version)
    store.materialize_incremental(dt.datetime.now(dt.UTC))
    source = str((repo / "data" / "customer_transactions.parquet").absolute())
    yield {
        "url": metadata_url,
        "run_id": run.info.run_id,
        "job": job,
        "source": source,
        "version": int(version.version),
        "store": store,
    }
    store.close()
    tracking._reset_for_tests()


def test_why_names_dataset_features_raw_data_run_and_approver(flow: dict[str, Any]) -> None:
    answer = why(flow["url"], f"models:/{MODEL}/Production")
    assert (answer.name, answer.version, answer.stage) == (MODEL, flow["version"], "Production")
    assert answer.aliases == ["champion"]
    assert [r.name for r in answer.runs] == [flow["run_id"]]
    assert [ts.uri for ts in answer.training_sets] == [flow["job"].training_set_uri]
    (training_set,) = answer.training_sets
    assert training_set.properties["row_count"] == 20
    assert training_set.properties["feature_refs"] == REFS
    assert len(str(training_set.properties["entity_fingerprint"])) == 64
    assert answer.features == REFS
    assert [v.name for v in answer.feature_views] == ["repo/customer_transactions"]
    assert [s.uri for s in answer.data_sources] == [flow["source"]]
    assert answer.approved_by
    assert [a.properties.get("to_stage") for a in answer.approvals] == [
        "Staging",
        "Production",
        None,
    ]
    assert why(flow["url"], f"models:/{MODEL}@champion").approved_by == answer.approved_by
    with pytest.raises(NotFound, match="no version in stage 'Archived'"):
        why(flow["url"], f"models:/{MODEL}/Archived")
    with pytest.raises(NotFound, match="'nope' does not exist"):
        why(flow["url"], "models:/nope/Production")
    with pytest.raises(InvalidArgument):
        why(flow["url"], "runs:/abc")


def test_serving_lists_production_and_aliases(flow: dict[str, Any]) -> None:
    entries = serving(flow["url"])
    assert [(e.model, e.slot, e.version) for e in entries] == [
        (MODEL, "Production", flow["version"]),
        (MODEL, "@champion", flow["version"]),
    ]
    assert all(e.approved_by and e.approved_at and e.run_id == flow["run_id"] for e in entries)


def test_uses_lists_what_was_built_from_a_source(flow: dict[str, Any]) -> None:
    answer = uses(flow["url"], flow["source"])
    assert [a.name for a in answer.feature_views] == ["repo/customer_transactions"]
    assert [a.uri for a in answer.training_sets] == [flow["job"].training_set_uri]
    assert [e.name for e in answer.runs] == [flow["run_id"]]
    assert [a.name for a in answer.model_versions] == [f"{MODEL}/v{flow['version']}"]
    assert [a.name for a in answer.online_tables] == ["repo/customer_transactions"]
    with pytest.raises(NotFound, match="no recorded data source"):
        uses(flow["url"], "/no/such/file.parquet")


def test_materialization_and_runs_are_executions(flow: dict[str, Any]) -> None:
    with MetadataStore(flow["url"]) as store:
        (mat,) = store.get_executions(type_name="ferrostore.Materialization")
        assert mat.properties["rows"] > 0 and mat.last_known_state == "COMPLETE"
        (run,) = store.get_executions(type_name="ferrostore.Run")
        assert run.last_known_state == "COMPLETE"
        assert run.properties["run_name"] == "train-fraud"
        (exp,) = store.get_contexts_by_execution(run.id)  # type: ignore[arg-type]
        assert exp.name == "fraud"


def test_cli_answers_in_every_format(
    flow: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = ["--db", flow["url"]]
    assert main(["lineage", "why", f"models:/{MODEL}/Production", *db]) == 0
    out = capsys.readouterr().out
    assert "approved by:" in out and "customer_transactions.parquet" in out
    assert "└── [Run]" in out and "TrainingSet" in out
    assert main(["lineage", "why", f"models:/{MODEL}/Production", *db, "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["features"] == REFS
    assert main(["lineage", "why", f"models:/{MODEL}@champion", *db, "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph lineage {")
    assert main(["lineage", "uses", flow["source"], *db, "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR")
    assert main(["lineage", "serving", *db]) == 0
    assert "@champion" in capsys.readouterr().out
    assert main(["lineage", "serving", *db, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["slot"] == "Production"
    assert main(["lineage", "graph", "--artifact", "1", "--hops", "2", *db]) == 0
    assert capsys.readouterr().out
    assert main(["lineage", "why", "models:/nope/Production", *db]) == 1
    assert "NotFound" in capsys.readouterr().err
    if shutil.which("dot"):
        png = tmp_path / "why.png"
        args = ["lineage", "why", f"models:/{MODEL}/Production", *db, "--format", "png"]
        assert main([*args, "--output", str(png)]) == 0
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_run_names_its_training_set_by_tag(tmp_path: Path) -> None:
    import ferrostore.registry as mlflow
    from ferrostore.registry import tracking

    tracking._reset_for_tests()
    url = str(tmp_path / "m.db")
    mlflow.set_tracking_uri(url)
    with MetadataDB(url) as db:
        from ferrostore.lineage import Artifact
        from ferrostore.lineage.recording import lineage_store

        lineage_store(db).put_artifacts(
            [Artifact(type="ferrostore.TrainingSet", uri="training-sets:/p/abc", name="p/abc")]
        )
    with mlflow.start_run() as run:
        mlflow.set_tag(TRAINING_SET_TAG, "training-sets:/p/abc")
    with MetadataStore(url) as store:
        (ts,) = store.get_artifacts(uri="training-sets:/p/abc")
        graph = store.get_lineage_subgraph(ts, 1, Direction.DOWNSTREAM)
        assert [e.name for e in graph.executions] == [run.info.run_id]
    tracking._reset_for_tests()


def test_a_failing_subscriber_never_fails_the_registry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import ferrostore.registry as mlflow
    from ferrostore.registry import _hooks, tracking

    def broken(name: str, payload: Any) -> None:
        raise RuntimeError("subscriber bug")

    tracking._reset_for_tests()
    mlflow.set_tracking_uri(str(tmp_path / "m.db"))
    unsubscribe = _hooks.subscribe(broken)
    try:
        with caplog.at_level(logging.ERROR, "ferrostore.registry"), mlflow.start_run():
            pass
    finally:
        unsubscribe()
        tracking._reset_for_tests()
    assert "subscriber bug" in caplog.text
    with MetadataStore(str(tmp_path / "m.db")) as store:
        assert len(store.get_executions(type_name="ferrostore.Run")) == 1


_COUNT_TRANSITIONS = SQL(
    "SELECT count(*) FROM lineage_executions AS e JOIN lineage_types AS t ON t.id = e.type_id "
    "WHERE t.name = 'ferrostore.StageTransition'"
)


def _transitions(url: str) -> list[Any]:
    with MetadataStore(url) as store:
        return store.get_executions(type_name="ferrostore.StageTransition")


def test_registry_lineage_commits_with_the_change(
    metadata_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The approval record is written in the transition's own transaction: a transition that
    # fails after recording leaves neither the stage change nor its lineage.
    import ferrostore.registry as mlflow
    from ferrostore.registry import Client, tracking
    from ferrostore.registry import store as registry_store

    tracking._reset_for_tests()
    mlflow.set_tracking_uri(metadata_url)
    try:
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(sklearn.LinearRegression().fit([[0], [1]], [0, 1]), name="m")
        mlflow.register_model(f"runs:/{run.info.run_id}/m", "atomic")
        client = Client()
        real_record = registry_store._Events.record

        seen_in_transaction: list[int] = []

        def record_then_fail(self: Any, conn: Any, event_name: str, **payload: Any) -> None:
            real_record(self, conn, event_name, **payload)
            if event_name == "stage_transitioned":
                seen_in_transaction.append(DriverConnection.of(conn).scalar(_COUNT_TRANSITIONS))
                raise RuntimeError("crash after recording")

        monkeypatch.setattr(registry_store._Events, "record", record_then_fail)
        with pytest.raises(RuntimeError, match="crash after recording"):
            client.transition_model_version_stage("atomic", 1, "Staging")
        assert client.get_model_version("atomic", 1).current_stage == "None"
        assert seen_in_transaction == [1]  # written in the change's transaction...
        assert _transitions(metadata_url) == []  # ...and rolled back with it
        monkeypatch.setattr(registry_store._Events, "record", real_record)
        client.transition_model_version_stage("atomic", 1, "Staging", approved_by="ana")
        (recorded,) = _transitions(metadata_url)
        assert recorded.properties["to_stage"] == "Staging"
        assert recorded.properties["approved_by"] == "ana"
    finally:
        tracking._reset_for_tests()


def test_a_failing_recorder_rolls_back_only_its_own_writes(
    metadata_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ferrostore.registry as mlflow
    from ferrostore.lineage import recording
    from ferrostore.registry import Client, tracking

    tracking._reset_for_tests()
    mlflow.set_tracking_uri(metadata_url)
    real_approval = recording._on_approval

    def half_then_fail(ms: Any, payload: Any, driver: Any, kind: str) -> None:
        real_approval(ms, payload, driver, kind)  # writes the whole approval record...
        raise RuntimeError("recorder bug")  # ...which the savepoint then takes back

    try:
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(sklearn.LinearRegression().fit([[0], [1]], [0, 1]), name="m")
        mlflow.register_model(f"runs:/{run.info.run_id}/m", "partial")
        monkeypatch.setattr(recording, "_on_approval", half_then_fail)
        monkeypatch.setitem(
            recording._HANDLERS,
            "stage_transitioned",
            lambda ms, p, d: recording._on_approval(ms, p, d, "stage"),
        )
        client = Client()
        with caplog.at_level(logging.ERROR, "ferrostore.registry"):
            moved = client.transition_model_version_stage("partial", 1, "Production")
        assert moved.current_stage == "Production"
        assert client.get_model_version("partial", 1).current_stage == "Production"
        assert "recorder bug" in caplog.text
        assert _transitions(metadata_url) == []
        # The run and model version recorded before are untouched.
        with MetadataStore(metadata_url) as store:
            assert len(store.get_executions(type_name="ferrostore.Run")) == 1
            assert len(store.get_artifacts(type_name="ferrostore.ModelVersion")) == 1
    finally:
        tracking._reset_for_tests()
