"""The declared stack: plan / apply / destroy round trips, idempotence, stale plans, replace
markers, prune and protect, an apply killed midway then resumed, invalid files, the CLI and
the example ferrostore.yaml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ferrostore.cli import main
from ferrostore.errors import Conflict, InvalidArgument
from ferrostore.features.scaffold import init_repo
from ferrostore.metadata import MetadataDB
from ferrostore.metadata import tables as t
from ferrostore.stack import apply_stack, destroy_stack, diff_history, plan_stack, stack_history
from ferrostore.stack.apply import CRASH_AFTER_ENV, journal_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ferrostore.yaml"

STACK = """\
name: demo
metadata: {{database: data/metadata.db}}
features:
  repo: feature_repo
  definitions: [features.py]
collections:
  - name: documents
    dimension: {dim}
    space: cosine
    metadata: {{description: docs}}
models:
  - name: fraud-detector
    description: {desc}
    tags: {{team: fraud}}
    aliases: {{champion: 1}}
serving:
  provider: local
  autoscaling: {{target_cpu: 70}}
"""


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FERROSTORE_METADATA_URL", "FERROSTORE_ARTIFACT_ROOT", CRASH_AFTER_ENV):
        monkeypatch.delenv(var, raising=False)


def _stack(root: Path, *, dim: int = 384, desc: str = "Flags fraud", extra: str = "") -> Path:
    if not (root / "feature_repo").exists():
        init_repo(root / "feature_repo")
    path = root / "ferrostore.yaml"
    path.write_text(STACK.format(dim=dim, desc=desc) + extra)
    return path


def _db(root: Path) -> MetadataDB:
    return MetadataDB(root / "data" / "metadata.db")


def _rows(root: Path, table: sa.Table) -> list[sa.Row]:
    with _db(root) as db, db.transaction(readonly=True) as conn:
        return list(conn.execute(sa.select(table)))


def _collections(root: Path) -> dict[str, sa.Row]:
    with MetadataDB(root / "vectors" / "metadata.db") as db, db.transaction() as conn:
        return {r.name: r for r in conn.execute(sa.select(t.vector_collections))}


def _add_version(root: Path, name: str, version: int) -> None:
    with _db(root) as db, db.transaction() as conn:
        now = int(time.time() * 1000)
        conn.execute(
            sa.insert(t.model_versions).values(
                name=name, version=version, creation_time=now, last_updated_time=now,
                user_id="test", current_stage="None", source="file:///m", status="READY",
            )
        )  # fmt: skip


def test_plan_apply_destroy_round_trip(tmp_path: Path) -> None:
    path = _stack(tmp_path)
    plan = plan_stack(path)
    ids = [c.id for c in plan.changes]
    assert all(c.action == "create" for c in plan.changes)
    assert ids == [
        "metadata_database.demo",
        "artifact_store.demo",
        "feature_repo.feature_repo",
        "entity.customer_id",
        "feature_view.customer_transactions",
        "collection.documents",
        "model.fraud-detector",
        "serving.demo",
    ]
    assert not (tmp_path / "data" / "metadata.db").exists(), "plan must not create anything"
    assert "Plan: 8 to add, 0 to change, 0 to replace, 0 to destroy." in plan.render()
    assert any("alias 'champion' pins version 1" in w for w in plan.warnings)

    result = apply_stack(path)
    assert len(result.applied) == 8 and result.execution_id is not None
    assert not journal_path(path).exists()
    views = {r.name for r in _rows(tmp_path, t.feature_registry_objects)}
    assert views == {"customer_id", "customer_transactions"}
    coll = _collections(tmp_path)["documents"]
    assert coll.space == "cosine" and json.loads(coll.metadata)["ferrostore:dimension"] == 384
    [model] = _rows(tmp_path, t.registered_models)
    assert model.description == "Flags fraud"
    assert (tmp_path / "feature_repo" / "data" / "online").is_dir()

    # idempotent: nothing to do the second time
    again = plan_stack(path)
    assert not again.has_changes and again.unchanged == 8
    assert apply_stack(path).summary().startswith("No changes")

    # the alias applies once its version exists
    _add_version(tmp_path, "fraud-detector", 1)
    plan = plan_stack(path)
    [change] = plan.changes
    assert change.id == "model.fraud-detector" and change.action == "update"
    assert [(f.key, f.old, f.new) for f in change.fields] == [("aliases.champion", None, 1)]
    apply_stack(path)
    assert [(r.alias, r.version) for r in _rows(tmp_path, t.registered_model_aliases)] == [
        ("champion", 1)
    ]
    assert not plan_stack(path).has_changes

    destroyed = destroy_stack(path)
    assert {c.action for c in destroyed.applied} == {"delete"}
    assert "documents" not in _collections(tmp_path)
    assert _rows(tmp_path, t.registered_models) == []
    assert _rows(tmp_path, t.feature_registry_objects) == []
    history = stack_history(path)
    assert [h.destroy for h in history] == [False, False, True]
    assert history[0].spec["models"][0]["name"] == "fraud-detector"
    # after a destroy, plan shows the stack to create again
    assert plan_stack(path).count("create") >= 4


def test_update_and_replace_markers_and_data_loss_warning(tmp_path: Path) -> None:
    path = _stack(tmp_path)
    apply_stack(path)
    client_path = tmp_path / "vectors"
    import ferrostore.vectors as chromadb

    client = chromadb.PersistentClient(client_path)
    client.get_collection("documents", embedding_function=None).add(
        ids=["a"], embeddings=[[0.1] * 384]
    )
    client.close()

    _stack(tmp_path, dim=768, desc="New description")
    features = tmp_path / "feature_repo" / "features.py"
    features.write_text(
        features.read_text().replace(
            'Field(name="total_transactions_30d", dtype=Int64)',
            'Field(name="total_transactions_30d", dtype=Float32)',
        )
    )
    plan = plan_stack(path)
    by_id = {c.id: c for c in plan.changes}
    assert by_id["collection.documents"].action == "replace"
    assert [
        (f.key, f.old, f.new, f.forces_replace) for f in by_id["collection.documents"].fields
    ] == [("dimension", 384, 768, True)]
    assert by_id["model.fraud-detector"].action == "update"
    assert by_id["feature_view.customer_transactions"].action == "replace"
    text = plan.render()
    assert "-/+ collection.documents" in text
    assert 'description: "Flags fraud" -> "New description"' in text
    assert (
        'schema.total_transactions_30d.dtype: "Int64" -> "Float32"   # forces replacement' in text
    )
    assert "collection.documents: its 1 records are deleted" in text
    assert "Plan: 0 to add, 1 to change, 2 to replace, 0 to destroy." in text

    apply_stack(path)
    coll = _collections(tmp_path)["documents"]
    assert coll.record_count == 0 and json.loads(coll.metadata)["ferrostore:dimension"] == 768
    assert not plan_stack(path).has_changes


def test_saved_plan_is_refused_once_stale(tmp_path: Path) -> None:
    path = _stack(tmp_path)
    apply_stack(path)
    _stack(tmp_path, desc="v2")
    saved = plan_stack(path).save(tmp_path / "plan.json")
    data = json.loads(saved.read_text())
    assert len(data["state_fingerprint"]) == 64 and data["changes"][0]["action"] == "update"

    # someone changes the model outside the stack: the saved plan is stale
    with _db(tmp_path) as db, db.transaction() as conn:
        conn.execute(sa.update(t.registered_models).values(description="edited by hand"))
    with pytest.raises(Conflict, match="state changed since the saved plan"):
        apply_stack(path, saved)

    fresh = plan_stack(path).save(tmp_path / "plan.json")
    _stack(tmp_path, desc="v3")  # the file changed since that plan
    with pytest.raises(Conflict, match="another version of"):
        apply_stack(path, fresh)
    _stack(tmp_path, desc="v2")
    assert apply_stack(path, fresh).applied[0].id == "model.fraud-detector"
    [model] = _rows(tmp_path, t.registered_models)
    assert model.description == "v2"


def test_deletes_only_with_prune_and_protect(tmp_path: Path) -> None:
    extra = "monitoring:\n  prometheus: {retention_days: 30}\n"
    path = _stack(tmp_path, extra=extra)
    apply_stack(path)
    path.write_text(
        path.read_text()
        .replace(extra, "")
        .replace("dimension: 384", "dimension: 384\n    protect: true")
    )
    plan = plan_stack(path)
    assert [(c.action, c.id) for c in plan.changes] == [("delete", "monitoring.demo")]
    result = apply_stack(path)
    assert [c.id for c in result.skipped] == ["monitoring.demo"]
    assert "use --prune" in result.summary()
    assert plan_stack(path).count("delete") == 1
    assert [c.id for c in apply_stack(path, prune=True).applied] == ["monitoring.demo"]
    assert not plan_stack(path).has_changes

    # a protected collection: neither replaced, nor pruned, nor destroyed
    protected = path.read_text()
    path.write_text(protected.replace("dimension: 384", "dimension: 512"))
    with pytest.raises(Conflict, match=r"collection\.documents is protected"):
        plan_stack(path)
    path.write_text(protected.split("collections:")[0] + "models:" + protected.split("models:")[1])
    assert "never destroyed" in plan_stack(path).render()
    with pytest.raises(Conflict, match=r"collection\.documents is protected"):
        apply_stack(path, prune=True)
    path.write_text(protected)
    with pytest.raises(Conflict, match=r"collection\.documents is protected"):
        destroy_stack(path)
    assert "documents" in _collections(tmp_path)


_CHILD = """
import sys
from ferrostore.stack import apply_stack
apply_stack(sys.argv[1])
"""


def test_apply_killed_midway_is_resumed(tmp_path: Path) -> None:
    path = _stack(tmp_path)
    env = {**os.environ, CRASH_AFTER_ENV: "5"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == 75, proc.stderr.decode()
    journal = json.loads(journal_path(path).read_text())
    assert journal["done"] == [
        "open-db:metadata_database.demo",
        "mkdir:artifact_store.demo",
        "mkdir:feature_repo.feature_repo",
        "online-register:feature_view.customer_transactions",
        "collection-create:collection.documents",
    ]
    assert journal["steps"][-1] == "metadata:transaction"
    assert "documents" in _collections(tmp_path)  # a side effect done before the kill
    assert _rows(tmp_path, t.registered_models) == []  # the metadata transaction not yet

    result = apply_stack(path)
    assert result.resumed and result.steps_skipped == 5
    assert not journal_path(path).exists()
    assert len(_rows(tmp_path, t.registered_models)) == 1
    assert not plan_stack(path).has_changes
    assert len(stack_history(path)) == 1


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: x\ncollection: []\n", 2, "unknown key 'collection'"),
        ("models:\n  - name: m\n    tags: [a]\n", 3, "tags must be a mapping"),
        ("collections:\n  - name: docs\n    dimension: many\n", 3, "dimension must be a int"),
        ("features:\n  repo: feature_repo\n  definitions: [nope.py]\n", 3, "'nope.py' not found"),
    ],
)
def test_invalid_files_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    init_repo(tmp_path / "feature_repo")
    path = tmp_path / "ferrostore.yaml"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=message) as err:
        plan_stack(path)
    assert str(err.value).startswith(f"{path.absolute()}:{line}:")
    assert main(["plan", "--file", str(path)]) == 1
    assert f"{path.absolute()}:{line}:" in capsys.readouterr().err


def test_broken_definitions_module_is_named(tmp_path: Path) -> None:
    path = _stack(tmp_path)
    (tmp_path / "feature_repo" / "features.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(InvalidArgument, match=r"features\.py.*RuntimeError: boom"):
        plan_stack(path)


def test_cli_exit_codes_and_dispatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stack(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "-out", "plan.json"]) == 2
    out = capsys.readouterr().out
    assert "+ collection.documents" in out and "Saved the plan" in out
    assert main(["apply", "plan.json"]) == 0
    assert "Apply complete! Resources: 8 added" in capsys.readouterr().out
    assert main(["stack", "plan"]) == 0
    assert main(["apply"]) == 0 and "No changes" in capsys.readouterr().out
    _stack(tmp_path, desc="v2")
    assert main(["apply"]) == 0
    capsys.readouterr()
    assert main(["stack", "history"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["stack", "history", "--diff", "1", "2"]) == 0
    assert "models" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["destroy"]) == 1  # no confirmation possible without --yes
    assert main(["destroy", "--yes"]) == 0
    assert "destroyed" in capsys.readouterr().out
    assert _rows(tmp_path, t.registered_models) == []
    # the feature repo commands still work where there is no ferrostore.yaml
    monkeypatch.chdir(tmp_path / "feature_repo")
    assert main(["plan"]) == 0
    assert "changes pending" in capsys.readouterr().out


def test_history_diff(tmp_path: Path) -> None:
    path = _stack(tmp_path)
    apply_stack(path)
    _stack(tmp_path, dim=512)
    apply_stack(path)
    first, second = stack_history(path)
    [(key, old, new)] = diff_history(first, second)
    assert key == "collections" and old[0]["dimension"] == 384 and new[0]["dimension"] == 512


def test_example_stack_plans_and_applies(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "ferrostore.yaml")
    init_repo(tmp_path / "feature_repo")
    plan = plan_stack(tmp_path)
    ids = {c.id for c in plan.changes}
    assert {
        "feature_view.customer_transactions",
        "collection.documents",
        "model.fraud-detector",
        "serving.fraud-platform",
        "monitoring.fraud-platform",
    } <= ids
    result = apply_stack(tmp_path)
    assert len(result.applied) == len(plan.changes)
    assert not plan_stack(tmp_path).has_changes
    coll = _collections(tmp_path)["documents"]
    assert coll.space == "cosine" and json.loads(coll.metadata)["ferrostore:dimension"] == 384
    with pytest.raises(Conflict, match="protected"):
        destroy_stack(tmp_path)
