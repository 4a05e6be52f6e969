r"""``feature_store.yaml``: a feature repo's configuration, with Feast's keys.

Only ``project`` is required. ``registry`` names the metadata database (a path relative to
the repo, a URL, or Feast's ``{registry_type: sql, path: ...}`` mapping); without it the
registry lives in the metadata database named by ``FERROSTORE_METADATA_URL``, else
``<repo>/.ferrostore/metadata.db``. The online store is ferrostore's LMDB store, by default in
``<repo>/data/online``; ``online_store`` may set its ``path`` and ``cache_mb``, the memory in
MiB a process may use to keep the views it reads in memory (default 256, 0 for none).

Example:
    >>> import pathlib, tempfile
    >>> repo = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (repo / "feature_store.yaml").write_text("project: demo\\n")
    >>> RepoConfig.load(repo).project
    'demo'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ferrostore.errors import InvalidArgument, NotFound
from ferrostore.metadata import MetadataDB
from ferrostore.metadata.db import METADATA_URL_ENV, default_metadata_url

__all__ = ["CONFIG_FILE", "RepoConfig"]

CONFIG_FILE = "feature_store.yaml"
_ONLINE_TYPES = ("lmdb", "ferrostore", "sqlite", "ferrostore.features.online_store.OnlineStore")
_OFFLINE_TYPES = ("file", "dask", "duckdb", "ferrostore")
_PROJECT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class RepoConfig:
    """A parsed ``feature_store.yaml``.

    Attributes:
        repo_path: The repo's root folder (absolute).
        project: The project's name.
        registry: The metadata database (path or URL), or ``None`` for the default.
        online_path: The LMDB online store's folder.
        provider: Always ``"local"``.
        online_cache_bytes: The online store's ``cache_bytes``, ``None`` for its default.
    """

    repo_path: Path
    project: str
    registry: str | None
    online_path: Path
    provider: str = "local"
    online_cache_bytes: int | None = None

    @classmethod
    def load(cls, repo_path: str | os.PathLike[str]) -> RepoConfig:
        """Read ``<repo_path>/feature_store.yaml``.

        Args:
            repo_path: The repo's root folder.

        Returns:
            The configuration.

        Raises:
            NotFound: The folder or its ``feature_store.yaml`` does not exist.
            InvalidArgument: The file is not valid YAML, lacks ``project``, or names an
                unsupported provider or store type.
        """
        root = Path(repo_path).expanduser().absolute()
        path = root / CONFIG_FILE
        if not path.is_file():
            raise NotFound(
                f"no {CONFIG_FILE} in {str(root)!r}: expected a feature repo "
                "(create one with `ferrostore init`)"
            )
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{path} must hold a mapping of keys, got {type(raw).__name__}")
        return cls.from_dict(raw, root)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], root: Path) -> RepoConfig:
        """Build a configuration from the YAML mapping ``raw`` of the repo ``root``."""
        project = raw.get("project")
        if not isinstance(project, str) or not _PROJECT.match(project):
            raise InvalidArgument(
                f"{CONFIG_FILE}: project {project!r} is invalid: expected a name of letters, "
                "digits, '_' and '-'"
            )
        provider = raw.get("provider", "local")
        if provider != "local":
            raise InvalidArgument(
                f"{CONFIG_FILE}: provider {provider!r} is not supported: expected 'local'"
            )
        registry = _registry(raw.get("registry"), root)
        online = raw.get("online_store")
        online_path = root / "data" / "online"
        cache_bytes = None
        if isinstance(online, str):
            online = {"type": online}
        if online is not None:
            if not isinstance(online, dict) or online.get("type", "lmdb") not in _ONLINE_TYPES:
                raise InvalidArgument(
                    f"{CONFIG_FILE}: online_store {online!r} is not supported: expected "
                    "type 'lmdb' (ferrostore's online store) with an optional path"
                )
            if online.get("path"):
                online_path = _resolve(str(online["path"]), root)
            cache_mb = online.get("cache_mb")
            if cache_mb is not None:
                if isinstance(cache_mb, bool) or not isinstance(cache_mb, int | float):
                    cache_mb = -1
                if not 0 <= cache_mb <= 2**40:
                    raise InvalidArgument(
                        f"{CONFIG_FILE}: online_store cache_mb {online['cache_mb']!r} is "
                        "invalid: expected a number of MiB >= 0"
                    )
                cache_bytes = int(cache_mb * (1 << 20))
        offline = raw.get("offline_store")
        if isinstance(offline, str):
            offline = {"type": offline}
        if offline is not None and (
            not isinstance(offline, dict) or offline.get("type", "file") not in _OFFLINE_TYPES
        ):
            raise InvalidArgument(
                f"{CONFIG_FILE}: offline_store {offline!r} is not supported: expected "
                "type 'file' (Parquet)"
            )
        return cls(root, project, registry, online_path, provider, cache_bytes)

    def open_metadata(self) -> MetadataDB:
        """Open the metadata database holding this repo's registry."""
        if self.registry is not None:
            return MetadataDB(self.registry)
        value = os.environ.get(METADATA_URL_ENV, "").strip()
        return MetadataDB(value or default_metadata_url(self.repo_path))


def _resolve(path: str, root: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def _registry(value: Any, root: Path) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        kind = value.get("registry_type", "sql")
        if kind not in ("sql", "file"):
            raise InvalidArgument(
                f"{CONFIG_FILE}: registry_type {kind!r} is not supported: expected 'sql'"
            )
        value = value.get("path")
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(
            f"{CONFIG_FILE}: registry {value!r} is invalid: expected a database path or URL"
        )
    if "://" in value:
        return value
    return str(_resolve(value, root))
