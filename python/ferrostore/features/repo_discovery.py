r"""Find the feature definitions of a repo: import its Python files, collect the objects.

Example:
    >>> import pathlib, tempfile
    >>> repo = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (repo / "defs.py").write_text(
    ...     "from ferrostore.features import Entity\\ncustomer = Entity(name='customer_id')\\n")
    >>> [e.name for e in discover_objects(repo)]
    ['customer_id']
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from ferrostore.errors import InvalidArgument
from ferrostore.features.definitions import Entity, FeatureService, FeatureView

__all__ = ["discover_objects", "python_files"]

_SKIP_DIRS = {"data", "node_modules", "venv", "env", "build", "dist", "site-packages"}


def python_files(root: str | os.PathLike[str]) -> list[Path]:
    """The repo's Python files, sorted, skipping hidden folders, ``data/`` and virtualenvs."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith((".", "_"))
            and d not in _SKIP_DIRS
            and not (Path(dirpath, d) / "pyvenv.cfg").exists()
        )
        found += [Path(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    return found


def discover_objects(root: str | os.PathLike[str]) -> list[Any]:
    """Import every Python file of the repo and return its definitions, deduplicated.

    Module-level :class:`Entity`, :class:`FeatureView` and :class:`FeatureService` objects
    are collected (the same object imported by several files counts once).

    Args:
        root: The repo's root folder; it is put on ``sys.path`` while importing.

    Returns:
        The definitions, entities first, then views, then services.

    Raises:
        InvalidArgument: A file fails to import (the message names it and the error).
    """
    root = Path(root).absolute()
    seen: dict[int, Any] = {}
    sys.path.insert(0, str(root))
    try:
        for path in python_files(root):
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
            name = f"_ferrostore_repo_{digest}_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(name, None)
                raise InvalidArgument(
                    f"importing {path.relative_to(root)} failed: {type(exc).__name__}: {exc}"
                ) from exc
            for value in vars(module).values():
                if isinstance(value, Entity | FeatureView | FeatureService):
                    seen.setdefault(id(value), value)
    finally:
        sys.path.remove(str(root))
    order = {Entity: 0, FeatureView: 1, FeatureService: 2}
    return sorted(seen.values(), key=lambda o: (order[type(o)], o.name))
