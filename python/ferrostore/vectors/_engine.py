"""The Rust collection engine (``ferrostore._core.VectorCollection``) as the Python layer uses it.

An LMDB environment must be opened once per process, so engine handles are shared: every
:class:`ferrostore.vectors.Collection` of one folder in one process uses the same handle, kept
alive by the collections that use it and dropped with the last of them.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from ferrostore.errors import FerrostoreError, StorageError

__all__ = ["Engine", "EngineHandle", "open_engine"]


class Engine(Protocol):
    """The methods of ``ferrostore._core.VectorCollection`` this package calls."""

    @property
    def dim(self) -> int:
        """The collection's dimension."""

    @property
    def space(self) -> str:
        """cosine, l2 or ip."""

    @property
    def quantization(self) -> str:
        """How the graph stores vectors: bf16, f16, f32 or i8."""

    def count(self) -> int:
        """Records stored."""

    def write(
        self,
        ids: list[str],
        embeddings: NDArray[np.float32] | None,
        documents: list[str | None] | None,
        metadatas: str | None,
        *,
        mode: str,
    ) -> Any:
        """Write one batch in one transaction (mode add, upsert or update).

        ``metadatas`` is one JSON array with an object (or null) per id.
        """

    def delete(
        self,
        ids: list[str] | None,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
    ) -> int:
        """Delete matching records; returns how many (filters as validated dicts)."""

    def get(
        self,
        ids: list[str] | None,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
        limit: int | None,
        offset: int,
        include_embeddings: bool,
    ) -> tuple[list[str], NDArray[np.float32] | None, list[str | None], list[str | None]]:
        """Matching records in insertion order."""

    def query(
        self,
        queries: NDArray[np.float32],
        n_results: int,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
        include_embeddings: bool,
        include_documents: bool,
        include_metadatas: bool,
    ) -> tuple[
        list[list[str]],
        list[list[float]],
        list[list[str | None]] | None,
        list[list[str | None]] | None,
        list[NDArray[np.float32]] | None,
    ]:
        """Nearest neighbours of each query (``None`` for what was not included)."""

    def set_search_ef(self, ef: int) -> None:
        """Set the HNSW search breadth."""

    def is_deleted(self) -> bool:
        """Whether the collection was deleted (by any process) since it was opened."""

    def checkpoint_if_behind(self) -> bool:
        """Save the graph when re-inserting its unsaved records on reopen would cost more."""


class EngineHandle:
    """One open engine, shared by the collections of a folder in this process."""

    __slots__ = ("__weakref__", "engine", "path")

    def __init__(self, engine: Engine, path: str) -> None:
        self.engine = engine
        self.path = path


_handles: weakref.WeakValueDictionary[tuple[int, str], EngineHandle] = weakref.WeakValueDictionary()
_lock = threading.Lock()
_log = logging.getLogger(__name__)


def checkpoint_open_engines() -> None:
    """Save the graphs of this process's open engines that are far ahead of their checkpoint.

    Run at interpreter exit, so that the next process to open a collection loads its graph
    instead of inserting again the records added since the last checkpoint. A failure is
    logged, never raised: the graph is a cache of the records, rebuilt on open.
    """
    with _lock:
        handles = [h for (pid, _), h in list(_handles.items()) if pid == os.getpid()]
    for handle in handles:
        if handle.engine.is_deleted():
            continue
        try:
            handle.engine.checkpoint_if_behind()
        except FerrostoreError as err:
            _log.warning("could not save the graph of %s at exit: %s", handle.path, err)


atexit.register(checkpoint_open_engines)


def _extension(name: str) -> Any:
    """A member of the compiled module, or a clear error when this build lacks it."""
    from ferrostore import _core

    member = getattr(_core, name, None)
    if member is None:
        raise StorageError(
            f"this build of ferrostore has no vector engine (ferrostore._core.{name}); "
            "rebuild the extension: pip install ."
        )
    return member


def check_filters(where: Any, where_document: Any) -> None:
    """Validate filters as an engine does, for a collection that has no engine yet.

    Raises:
        InvalidArgument: Naming the malformed part.
    """
    _extension("check_filters")(where, where_document)


def open_engine(
    path: str | os.PathLike[str],
    *,
    dim: int | None,
    space: str,
    m: int,
    ef_construction: int,
    ef_search: int,
    quantization: str | None,
) -> EngineHandle:
    """Open (creating when ``dim`` is given) the engine of a collection folder, shared.

    Args:
        path: The collection's folder.
        dim: The dimension, or ``None`` to read the stored one (the folder must exist).
        space: cosine, l2 or ip; must match a stored collection.
        m: HNSW graph degree.
        ef_construction: HNSW build breadth.
        ef_search: HNSW search breadth.
        quantization: How a new graph stores vectors, ``None`` for the engine's default
            (float16 for cosine, float32 otherwise); a stored collection keeps its own.

    Returns:
        The handle; keep it as long as the engine is used.

    Raises:
        SchemaMismatch: The folder holds a collection of another dimension or space.
        StorageError: The folder cannot be opened, or the extension has no vector engine.
    """
    key = (os.getpid(), os.path.realpath(os.fspath(path)))
    with _lock:
        handle = _handles.get(key)
        if handle is None:
            engine = _extension("VectorCollection")(
                key[1],
                dim=dim,
                space=space,
                m=m,
                ef_construction=ef_construction,
                ef_search=ef_search,
                quantization=quantization,
            )
            handle = EngineHandle(cast(Engine, engine), key[1])
            _handles[key] = handle
        return handle


def mark_deleted(path: str | os.PathLike[str]) -> None:
    """Mark a folder's collection deleted for every process that has it open.

    Also stops sharing its handle. Call it before removing the folder.

    Raises:
        StorageError: The mark cannot be written.
    """
    key = (os.getpid(), os.path.realpath(os.fspath(path)))
    _extension("mark_collection_deleted")(key[1])
    with _lock:
        _handles.pop(key, None)
