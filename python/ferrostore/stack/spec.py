r"""``ferrostore.yaml``: the declared stack, parsed and validated with file and line in errors.

Keys (all optional but ``name`` defaults to the folder's name)::

    name: fraud-platform
    metadata: {database: ${FERROSTORE_METADATA_URL:-.ferrostore/metadata.db}}
    artifacts: {root: ./artifacts}
    features:
      repo: feature_repo
      definitions: [features.py]
      online_store: {type: lmdb, path: data/online}
      offline_store: {type: file}
    collections:
      - {name: docs, dimension: 384, space: cosine, index: {M: 16}, protect: true}
    models:
      - {name: fraud-detector, description: ..., tags: {team: fraud}, aliases: {champion: 3}}
    serving: {...}      # validated as a mapping and stored; acted on when serving lands
    monitoring: {...}

``${VAR}`` and ``${VAR:-default}`` expand from the environment in every string value.

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ferrostore.yaml"
    >>> _ = path.write_text("name: demo\nmodels:\n  - name: m\n    aliases: {champion: 1}\n")
    >>> load_stack(path).models[0].aliases
    {'champion': 1}
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferrostore.errors import InvalidArgument, NotFound

__all__ = [
    "STACK_FILE",
    "CollectionSpec",
    "FeatureRepoSpec",
    "ModelSpec",
    "StackSpec",
    "load_stack",
]

STACK_FILE = "ferrostore.yaml"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SPACES = ("cosine", "l2", "ip")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class CollectionSpec:
    """A declared vector collection (a ``dimension`` or ``space`` change forces a replace)."""

    name: str
    dimension: int
    space: str = "cosine"
    index: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    protect: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A declared registered model: description, tags, aliases pinned to versions."""

    name: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    protect: bool = False


@dataclass(frozen=True)
class FeatureRepoSpec:
    """The declared feature repo: its folder, definitions modules and store settings."""

    repo: Path
    definitions: list[Path] = field(default_factory=list)
    online_store: dict[str, Any] = field(default_factory=dict)
    offline_store: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StackSpec:
    """A parsed ``ferrostore.yaml``.

    Attributes:
        path: The file.
        name: The stack's name.
        database: The metadata database (a path, resolved against the file's folder, or URL).
        artifact_root: The artifact store's folder.
        features: The feature repo, if declared.
        collections: The vector collections.
        models: The registered models.
        serving: The ``serving`` section, stored as is.
        monitoring: The ``monitoring`` section, stored as is.
        raw: The whole expanded document (what an apply records).
    """

    path: Path
    name: str
    database: str
    artifact_root: Path
    features: FeatureRepoSpec | None
    collections: list[CollectionSpec]
    models: list[ModelSpec]
    serving: dict[str, Any]
    monitoring: dict[str, Any]
    raw: dict[str, Any]


class _Error(Exception):
    def __init__(self, node: yaml.Node | None, message: str) -> None:
        super().__init__(message)
        self.node = node


def _where(path: Path, node: yaml.Node | None) -> str:
    if node is None:
        return str(path)
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _expand(node: yaml.ScalarNode, value: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise _Error(node, f"environment variable ${{{name}}} is not set and has no default")

    return _ENV.sub(sub, value)


def _plain(node: yaml.Node) -> Any:
    """Turn a node into Python values (strings expanded), refusing duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key, value in node.value:
            k = _plain(key)
            if not isinstance(k, str):
                raise _Error(key, f"keys must be strings, got {k!r}")
            if k in out:
                raise _Error(key, f"key {k!r} is given twice")
            out[k] = _plain(value)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    return _expand(node, value) if isinstance(value, str) else value


def _child(node: yaml.MappingNode, key: str) -> yaml.Node:
    for k, v in node.value:
        if k.value == key:
            return v
    return node


def _check_keys(node: yaml.Node, allowed: tuple[str, ...], what: str) -> yaml.MappingNode:
    if not isinstance(node, yaml.MappingNode):
        raise _Error(node, f"{what} must be a mapping")
    for key, _ in node.value:
        if key.value not in allowed:
            raise _Error(
                key, f"unknown key {key.value!r} in {what}; expected one of {', '.join(allowed)}"
            )
    return node


def _typed(node: yaml.Node, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = False if isinstance(value, bool) and bool not in kinds else isinstance(value, kinds)
    if not ok:
        names = " or ".join(
            k.__name__.replace("dict", "mapping").replace("str", "string") for k in kinds
        )
        raise _Error(node, f"{what} must be a {names}, got {value!r}")
    return value


def _name(node: yaml.Node, value: Any, what: str) -> str:
    _typed(node, value, str, what)
    if not _NAME.match(value):
        raise _Error(node, f"{what} {value!r} must be letters, digits, '_', '-' or '.'")
    return str(value)


def _collections(node: yaml.Node, values: Any) -> list[CollectionSpec]:
    _typed(node, values, list, "collections")
    if not values:
        return []
    out, seen = [], set()
    for item_node, item in zip(node.value, values, strict=True):  # type: ignore[attr-defined]
        _check_keys(
            item_node,
            ("name", "dimension", "space", "index", "metadata", "protect"),
            "a collection",
        )
        get = functools.partial(_child, item_node)
        name = _name(get("name"), item.get("name"), "collection name")
        if name in seen:
            raise _Error(get("name"), f"collection {name!r} is declared twice")
        seen.add(name)
        dim = _typed(get("dimension"), item.get("dimension"), int, f"collection {name!r} dimension")
        if dim < 1:
            raise _Error(get("dimension"), f"collection {name!r} dimension must be >= 1")
        space = _typed(get("space"), item.get("space", "cosine"), str, "space")
        if space not in _SPACES:
            raise _Error(
                get("space"), f"collection {name!r} space {space!r}: expected {', '.join(_SPACES)}"
            )
        out.append(
            CollectionSpec(
                name,
                dim,
                space,
                _typed(get("index"), item.get("index", {}), dict, "index"),
                _typed(get("metadata"), item.get("metadata", {}), dict, "metadata"),
                _typed(get("protect"), item.get("protect", False), bool, "protect"),
            )
        )
    return out


def _models(node: yaml.Node, values: Any) -> list[ModelSpec]:
    _typed(node, values, list, "models")
    if not values:
        return []
    out, seen = [], set()
    for item_node, item in zip(node.value, values, strict=True):  # type: ignore[attr-defined]
        _check_keys(item_node, ("name", "description", "tags", "aliases", "protect"), "a model")
        get = functools.partial(_child, item_node)
        name = _typed(get("name"), item.get("name"), str, "model name")
        if name in seen:
            raise _Error(get("name"), f"model {name!r} is declared twice")
        seen.add(name)
        tags = _typed(get("tags"), item.get("tags", {}), dict, "tags")
        aliases = _typed(get("aliases"), item.get("aliases", {}), dict, "aliases")
        for alias, version in aliases.items():
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise _Error(
                    get("aliases"),
                    f"alias {alias!r} of model {name!r} must pin a version >= 1, got {version!r}",
                )
        description = item.get("description")
        if description is not None:
            _typed(get("description"), description, str, "description")
        out.append(
            ModelSpec(
                name,
                description,
                {str(k): str(v) for k, v in tags.items()},
                dict(aliases),
                _typed(get("protect"), item.get("protect", False), bool, "protect"),
            )
        )
    return out


def _features(node: yaml.Node, value: Any, root: Path) -> FeatureRepoSpec:
    _check_keys(node, ("repo", "definitions", "online_store", "offline_store"), "features")
    get = lambda key: _child(node, key)  # noqa: E731  # type: ignore[arg-type]
    repo = root / _typed(get("repo"), value.get("repo", "feature_repo"), str, "features.repo")
    if not (repo / "feature_store.yaml").is_file():
        raise _Error(get("repo"), f"feature repo {str(repo)!r} has no feature_store.yaml")
    modules = _typed(get("definitions"), value.get("definitions", []), list, "features.definitions")
    paths = []
    for module in modules:
        _typed(get("definitions"), module, str, "a definitions module")
        path = repo / module
        if not path.is_file():
            raise _Error(
                get("definitions"), f"definitions module {module!r} not found in {str(repo)!r}"
            )
        paths.append(path)
    return FeatureRepoSpec(
        repo,
        paths,
        _typed(get("online_store"), value.get("online_store", {}), dict, "online_store"),
        _typed(get("offline_store"), value.get("offline_store", {}), dict, "offline_store"),
    )


_TOP = (
    "name",
    "metadata",
    "artifacts",
    "features",
    "collections",
    "models",
    "serving",
    "monitoring",
)


def load_stack(path: str | os.PathLike[str]) -> StackSpec:
    """Read and validate a ``ferrostore.yaml`` (or the one in a folder).

    Args:
        path: The file, or a folder holding ``ferrostore.yaml``.

    Returns:
        The stack.

    Raises:
        NotFound: No such file.
        InvalidArgument: Malformed YAML, an unknown key, a value of the wrong type, a missing
            module or repo, an unset environment variable; the message starts with
            ``file:line:column``.
    """
    file = Path(path)
    if file.is_dir():
        file = file / STACK_FILE
    if not file.is_file():
        raise NotFound(f"stack file {str(file)!r} does not exist")
    root = file.parent.absolute()
    try:
        node = yaml.compose(file.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        raise InvalidArgument(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if node is None:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    try:
        _check_keys(node, _TOP, "the stack file")
        raw = _plain(node)
        get = lambda key: _child(node, key)  # noqa: E731  # type: ignore[arg-type]
        name = _name(get("name"), raw.get("name", root.name), "stack name")
        meta = raw.get("metadata", {})
        _check_keys(get("metadata"), ("database",), "metadata") if "metadata" in raw else None
        database = _typed(
            get("metadata"),
            meta.get("database", ".ferrostore/metadata.db"),
            str,
            "metadata.database",
        )
        if "://" not in database:
            database = str(root / database)
        art = raw.get("artifacts", {})
        _check_keys(get("artifacts"), ("root",), "artifacts") if "artifacts" in raw else None
        artifact_root = root / _typed(
            get("artifacts"), art.get("root", "artifacts"), str, "artifacts.root"
        )
        features = _features(get("features"), raw["features"], root) if "features" in raw else None
        collections = _collections(get("collections"), raw.get("collections", []))
        models = _models(get("models"), raw.get("models", []))
        serving = _typed(get("serving"), raw.get("serving", {}), dict, "serving")
        monitoring = _typed(get("monitoring"), raw.get("monitoring", {}), dict, "monitoring")
    except _Error as err:
        raise InvalidArgument(f"{_where(file, err.node)}: {err}") from None
    return StackSpec(
        file.absolute(), name, database, artifact_root, features, collections, models,
        serving, monitoring, raw,
    )  # fmt: skip
