"""ferrostore.yaml: parsing, environment expansion, and errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferrostore.errors import InvalidArgument, NotFound
from ferrostore.stack import load_stack

FULL = """\
name: fraud-platform
metadata:
  database: ${FS_TEST_DB:-meta/metadata.db}
artifacts:
  root: ./artifacts
features:
  repo: feature_repo
  definitions: [features.py]
  online_store: {type: lmdb, path: data/online}
  offline_store: {type: file}
collections:
  - name: docs
    dimension: 384
    space: cosine
    index: {M: 16, ef_construction: 200}
    protect: true
models:
  - name: fraud-detector
    description: Flags fraudulent transactions
    tags: {team: fraud}
    aliases: {champion: 3}
serving:
  provider: kubernetes
  min_replicas: 2
monitoring:
  prometheus: {retention_days: 30}
"""


def _write(tmp_path: Path, text: str) -> Path:
    repo = tmp_path / "feature_repo"
    repo.mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text("project: p\n")
    (repo / "features.py").write_text("")
    path = tmp_path / "ferrostore.yaml"
    path.write_text(text)
    return path


def test_full_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FS_TEST_DB", raising=False)
    stack = load_stack(_write(tmp_path, FULL))
    assert stack.name == "fraud-platform"
    assert stack.database == str(tmp_path.absolute() / "meta" / "metadata.db")
    assert stack.collections[0].dimension == 384 and stack.collections[0].protect
    assert stack.models[0].aliases == {"champion": 3}
    assert stack.models[0].tags == {"team": "fraud"}
    assert stack.features is not None
    assert stack.features.definitions == [tmp_path.absolute() / "feature_repo" / "features.py"]
    assert stack.serving["min_replicas"] == 2
    assert stack.monitoring == {"prometheus": {"retention_days": 30}}
    monkeypatch.setenv("FS_TEST_DB", "postgresql://u@db/meta")
    assert load_stack(tmp_path).database == "postgresql://u@db/meta"


def test_empty_file_is_a_default_stack(tmp_path: Path) -> None:
    (tmp_path / "ferrostore.yaml").write_text("")
    stack = load_stack(tmp_path)
    assert stack.name == tmp_path.name and stack.models == [] and stack.features is None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: x\nmodel: []\n", 2, "unknown key 'model' in the stack file"),
        ("models:\n  - name: m\n    alias: {a: 1}\n", 3, "unknown key 'alias' in a model"),
        ("collections:\n  - name: d\n    dimension: '384'\n", 3, "dimension must be a int"),
        ("collections:\n  - name: d\n    dimension: 3\n    space: dot\n", 4, "space 'dot'"),
        ("models:\n  - name: m\n    aliases: {a: x}\n", 3, "must pin a version"),
        ("models:\n  - name: m\n  - name: m\n", 3, "declared twice"),
        ("metadata: {database: '${FS_UNSET_VAR}'}\n", 1, "FS_UNSET_VAR} is not set"),
        ("features:\n  repo: nowhere\n", 2, "has no feature_store.yaml"),
        (
            "features:\n  repo: feature_repo\n  definitions: [missing.py]\n",
            3,
            "'missing.py' not found",
        ),
        ("serving: [1, 2]\n", 1, "serving must be a mapping"),
        ("name: [x\n", 2, "not valid YAML"),
        ("models:\n  - name: m\n    protect: yes please\n", 3, "protect must be a bool"),
        ("name: a\nname: b\n", 2, "given twice"),
    ],
)
def test_invalid_files_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FS_UNSET_VAR", raising=False)
    path = _write(tmp_path, text)
    with pytest.raises(InvalidArgument) as err:
        load_stack(path)
    assert str(err.value).startswith(f"{path}:{line}:"), str(err.value)
    assert message in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        load_stack(tmp_path / "nope.yaml")
