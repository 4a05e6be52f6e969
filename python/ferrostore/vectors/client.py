"""Chroma's clients: ``Client()`` in memory, ``PersistentClient(path)`` on disk.

A client owns a folder: the catalogue of its collections lives in the metadata database
``<path>/metadata.db`` (table ``vector_collections``, so lineage and the declared stack see
collections), and each collection's records in ``<path>/collections/<uuid>/``. ``Client()``
uses a temporary folder, removed when the client and its collections are garbage-collected.

Unlike Chroma, two ``Client()`` in one process do not share their collections: each is its
own temporary database. Several ``PersistentClient`` on one path, in one process or many,
see the same collections and records.
"""

from __future__ import annotations

import os
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferrostore.errors import AlreadyExists, InvalidArgument, NotFound, StorageError
from ferrostore.metadata import MetadataDB
from ferrostore.vectors import _validation, catalogue
from ferrostore.vectors._validation import context
from ferrostore.vectors.catalogue import CollectionRecord
from ferrostore.vectors.collection import DEFAULT_EMBEDDING_FUNCTION, Collection

if TYPE_CHECKING:
    from ferrostore.vectors.embeddings import EmbeddingFunction

__all__ = ["Client", "ClientAPI", "EphemeralClient", "PersistentClient"]


def _close(db: MetadataDB, tmp: tempfile.TemporaryDirectory[str] | None) -> None:
    db.close()
    if tmp is not None:
        tmp.cleanup()


class ClientAPI:
    """What ``Client`` and ``PersistentClient`` share: collection management.

    Not created directly: use :func:`Client` or :func:`PersistentClient`.
    """

    def __init__(
        self,
        root: Path,
        *,
        allow_reset: bool = False,
        tmp: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self._root = root
        self._collections_dir = root / "collections"
        self._allow_reset = allow_reset
        try:
            self._collections_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(
                f"cannot create the vector database folder {str(self._collections_dir)!r}: {err}"
            ) from err
        self._db = MetadataDB(root / "metadata.db")
        self._finalizer = weakref.finalize(self, _close, self._db, tmp)

    @property
    def path(self) -> Path:
        """The client's folder (a temporary one for ``Client()``)."""
        return self._root

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self._root)!r})"

    def heartbeat(self) -> int:
        """The current time in nanoseconds since the epoch (the client is always up)."""
        return time.time_ns()

    def get_version(self) -> str:
        """The ferrostore version."""
        from ferrostore import __version__

        return __version__

    def _collection(
        self, record: CollectionRecord, embedding_function: EmbeddingFunction | None
    ) -> Collection:
        return Collection(self, record, embedding_function)

    def create_collection(
        self,
        name: str,
        metadata: dict[str, Any] | None = None,
        embedding_function: EmbeddingFunction | None = DEFAULT_EMBEDDING_FUNCTION,
        get_or_create: bool = False,
    ) -> Collection:
        """Create a collection.

        Args:
            name: 3-512 characters from ``[a-zA-Z0-9._-]``, starting and ending with a letter
                or digit, no ``..``, not an IPv4 address.
            metadata: Collection metadata. ``hnsw:space`` (``l2`` by default, as in Chroma;
                ``cosine`` or ``ip``), ``hnsw:M`` (16), ``hnsw:construction_ef`` (100) and
                ``hnsw:search_ef`` (100) configure the index, and ferrostore's
                ``ferrostore:quantization`` (``f16`` for cosine and ``f32`` otherwise by
                default; or ``bf16``, ``i8``, held by usearch) how the graph stores vectors.
                Records always keep float32 and distances are computed from them. Other keys
                are kept as given.
            embedding_function: Embeds documents and query texts; the default is
                all-MiniLM-L6-v2 (offline); ``None`` requires embeddings in every call.
            get_or_create: Return the existing collection of that name instead of failing
                (its metadata is left unchanged).

        Returns:
            The collection.

        Raises:
            InvalidArgument: A bad name or metadata.
            AlreadyExists: A collection of that name exists and ``get_or_create`` is false.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> client = chromadb.Client()
            >>> c = client.create_collection("docs", metadata={"hnsw:space": "cosine"})
            >>> c.configuration["hnsw"]["space"]
            'cosine'
        """
        with context("create_collection"):
            _validation.check_collection_name(name)
            params = _validation.check_collection_metadata(metadata)
            if embedding_function is not None and not callable(embedding_function):
                raise InvalidArgument(
                    f"Expected embedding_function to be callable or None, got "
                    f"{embedding_function!r}"
                )
        if get_or_create:
            try:
                return self._collection(catalogue.get_by_name(self._db, name), embedding_function)
            except NotFound:
                pass
        record = CollectionRecord.new(name, metadata, params)
        try:
            catalogue.create(self._db, record)
        except AlreadyExists:
            if not get_or_create:
                raise
            record = catalogue.get_by_name(self._db, name)  # created concurrently
        return self._collection(record, embedding_function)

    def get_collection(
        self,
        name: str,
        embedding_function: EmbeddingFunction | None = DEFAULT_EMBEDDING_FUNCTION,
    ) -> Collection:
        """The collection named ``name``.

        Args:
            name: The collection's name.
            embedding_function: As in :meth:`create_collection` (not stored: pass the same
                one each time).

        Raises:
            NotFound: No such collection.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> client = chromadb.Client()
            >>> _ = client.create_collection("docs")
            >>> client.get_collection("docs").name
            'docs'
        """
        if not isinstance(name, str):
            raise InvalidArgument(f"Expected a collection name (str), got {name!r}")
        return self._collection(catalogue.get_by_name(self._db, name), embedding_function)

    def get_or_create_collection(
        self,
        name: str,
        metadata: dict[str, Any] | None = None,
        embedding_function: EmbeddingFunction | None = DEFAULT_EMBEDDING_FUNCTION,
    ) -> Collection:
        """The collection named ``name``, created with ``metadata`` if it does not exist.

        Raises:
            InvalidArgument: A bad name or metadata.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> client = chromadb.Client()
            >>> a = client.get_or_create_collection("docs")
            >>> b = client.get_or_create_collection("docs")
            >>> a.id == b.id
            True
        """
        return self.create_collection(
            name, metadata=metadata, embedding_function=embedding_function, get_or_create=True
        )

    def delete_collection(self, name: str) -> None:
        """Delete a collection: its catalogue entry, then its folder.

        Collection objects of it raise ``NotFound`` afterwards.

        Raises:
            NotFound: No such collection.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> client = chromadb.Client()
            >>> _ = client.create_collection("docs")
            >>> client.delete_collection("docs")
            >>> client.count_collections()
            0
        """
        if not isinstance(name, str):
            raise InvalidArgument(f"Expected a collection name (str), got {name!r}")
        record = catalogue.delete(self._db, name)
        Collection(self, record, None)._drop_files()

    def list_collections(
        self, limit: int | None = None, offset: int | None = None
    ) -> list[Collection]:
        """The collections, oldest first, as ``Collection`` objects (as Chroma 1.x returns).

        They use the default embedding function; use :meth:`get_collection` for another.

        Raises:
            InvalidArgument: ``limit`` or ``offset`` is not a non-negative int.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> client = chromadb.Client()
            >>> _ = client.create_collection("docs")
            >>> [c.name for c in client.list_collections()]
            ['docs']
        """
        with context("list_collections"):
            valid_limit, valid_offset = _validation.check_limit_offset(limit, offset)
        records = catalogue.list_all(self._db, limit=valid_limit, offset=valid_offset)
        return [self._collection(r, DEFAULT_EMBEDDING_FUNCTION) for r in records]

    def count_collections(self) -> int:
        """The number of collections."""
        return catalogue.count(self._db)

    def reset(self) -> bool:
        """Delete every collection; only when the client was created with ``allow_reset=True``.

        Returns:
            True.

        Raises:
            InvalidArgument: The client does not allow resets.
        """
        if not self._allow_reset:
            raise InvalidArgument(
                "Resetting is not allowed by this configuration: create the client with "
                "allow_reset=True"
            )
        for record in catalogue.list_all(self._db):
            self.delete_collection(record.name)
        return True

    def close(self) -> None:
        """Release the metadata database (and remove the folder of an in-memory client).

        Done automatically when the client is garbage-collected.
        """
        self._finalizer()


class EphemeralClient(ClientAPI):
    """An in-memory client: a temporary folder, removed with the client.

    Example:
        >>> import ferrostore.vectors as chromadb
        >>> chromadb.EphemeralClient().count_collections()
        0
    """

    def __init__(self, *, allow_reset: bool = False) -> None:
        tmp = tempfile.TemporaryDirectory(prefix="ferrostore-vectors-")
        super().__init__(Path(tmp.name), allow_reset=allow_reset, tmp=tmp)


Client = EphemeralClient
"""``chromadb.Client()``: an in-memory client (see :class:`EphemeralClient`)."""


class PersistentClient(ClientAPI):
    """A client whose collections live in ``path`` (created), across processes and restarts.

    Args:
        path: The folder (Chroma's default ``./chroma``).
        allow_reset: Whether :meth:`reset` may delete every collection.

    Raises:
        InvalidArgument: ``path`` is not a path.
        StorageError: The folder cannot be created or is a file.

    Example:
        >>> import tempfile, ferrostore.vectors as chromadb
        >>> folder = tempfile.mkdtemp()
        >>> c = chromadb.PersistentClient(folder).create_collection("demo", embedding_function=None)
        >>> c.add(ids="a", embeddings=[1.0, 2.0])
        >>> chromadb.PersistentClient(folder).get_collection("demo").count()
        1
    """

    def __init__(
        self, path: str | os.PathLike[str] = "./chroma", *, allow_reset: bool = False
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise InvalidArgument(f"Expected path to be a folder path, got {path!r}")
        root = Path(os.fspath(path)).expanduser().absolute()
        if root.is_file():
            raise StorageError(f"vector database path {str(root)!r} is a file: expected a folder")
        super().__init__(root, allow_reset=allow_reset)
