"""``Collection``: Chroma's collection API over the Rust collection engine.

Records (id, embedding, document, metadata) live in the collection's folder, in LMDB; each
write is one transaction, so a failed call changes nothing and a crash loses nothing that was
acknowledged. Filters use Chroma's ``where`` / ``where_document`` grammar and are evaluated in
Rust.

Where ferrostore differs from Chroma, on purpose:

* ``add`` of an id that exists raises :class:`ferrostore.errors.AlreadyExists` naming the ids
  and writes nothing. (Chroma's docstring says it raises; its implementations log a warning
  and skip the existing ids, silently dropping the new data.) Use ``upsert`` to overwrite.
* ``query`` on a collection with no records returns empty result lists for each query (as
  current Chroma does), and ``n_results`` larger than the number of matching records returns
  the records there are, without a warning.
* Metadata values are ``str``, ``int``, ``float`` or ``bool``; ``None`` is accepted only by
  ``update``, where it deletes the key. NaN and infinite floats are refused.
* There are no data loaders: ``images``, ``uris`` and ``include=["data"]`` are refused;
  ``include=["uris"]`` returns ``None`` for each record.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ferrostore.errors import FerrostoreError, InvalidArgument, NotFound
from ferrostore.vectors import _engine as engines
from ferrostore.vectors import _validation, catalogue
from ferrostore.vectors._validation import context
from ferrostore.vectors.catalogue import CollectionRecord
from ferrostore.vectors.types import (
    Embeddings,
    GetResult,
    IncludeItem,
    OneOrMany,
    QueryResult,
    UpdateMetadata,
    Where,
    WhereDocument,
)

if TYPE_CHECKING:
    from ferrostore.vectors.client import ClientAPI
    from ferrostore.vectors.embeddings import EmbeddingFunction

__all__ = ["DEFAULT_EMBEDDING_FUNCTION", "Collection"]

_log = logging.getLogger(__name__)


class _DefaultEmbeddingFunction:
    """Stands for ``DefaultEmbeddingFunction()`` until a text has to be embedded.

    The model is loaded once per process, on the first call, so that collections used only
    with explicit embeddings never load it.
    """

    _instance: Any = None

    def __repr__(self) -> str:
        return "DefaultEmbeddingFunction()"

    def resolve(self) -> Any:
        """The process-wide ``DefaultEmbeddingFunction()``, created on first use."""
        if _DefaultEmbeddingFunction._instance is None:
            from ferrostore.vectors.embeddings import DefaultEmbeddingFunction

            _DefaultEmbeddingFunction._instance = DefaultEmbeddingFunction()
        return _DefaultEmbeddingFunction._instance

    def __call__(self, input: Any) -> Any:
        """Embed documents."""
        return self.resolve()(input)

    def embed_query(self, input: Any) -> Any:
        """Embed query texts (the model's query variant when it has one)."""
        function = self.resolve()
        embed_query = getattr(function, "embed_query", None)
        return embed_query(input) if callable(embed_query) else function(input)


DEFAULT_EMBEDDING_FUNCTION: Any = _DefaultEmbeddingFunction()
"""The default ``embedding_function=``: all-MiniLM-L6-v2, loaded on first use."""

_GET_INCLUDE: tuple[IncludeItem, ...] = ("metadatas", "documents")
_QUERY_INCLUDE: tuple[IncludeItem, ...] = ("metadatas", "documents", "distances")
_PEEK_INCLUDE: tuple[IncludeItem, ...] = ("embeddings", "metadatas", "documents")
_PARAM_KEYS = {param: key for key, param in _validation.COLLECTION_PARAM_KEYS.items()}


def _loads(items: list[str | None]) -> list[dict[str, Any] | None]:
    # The engine hands back the JSON objects stored; one parse of them all as a JSON array
    # costs a fraction of a json.loads each.
    return json.loads("[" + ",".join("null" if m is None else m for m in items) + "]")


def _loads_rows(rows: list[list[str | None]]) -> list[list[dict[str, Any] | None]]:
    """:func:`_loads` of every row at once, split back into the rows."""
    flat = _loads([m for row in rows for m in row])
    out = []
    start = 0
    for row in rows:
        out.append(flat[start : start + len(row)])
        start += len(row)
    return out


def _filters(where: Any, where_document: Any) -> tuple[Where | None, WhereDocument | None]:
    """Filters for the engine, which validates and encodes them (an empty dict: no filter)."""
    if type(where) is dict and not where:
        where = None
    if type(where_document) is dict and not where_document:
        where_document = None
    return where, where_document


class Collection:
    """A named set of records (id, embedding, document, metadata), searched by similarity.

    Get one from a client (``client.create_collection("docs")``), never construct it directly.
    The dimension is fixed by the first add.

    Example:
        >>> import ferrostore.vectors as chromadb
        >>> client = chromadb.Client()
        >>> docs = client.create_collection("docs", embedding_function=None)
        >>> docs.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]],
        ...          documents=["apple", "banana"], metadatas=[{"n": 1}, {"n": 2}])
        >>> docs.query(query_embeddings=[0.9, 0.1], n_results=1)["ids"]
        [['a']]
        >>> docs.get(where={"n": {"$gte": 2}})["documents"]
        ['banana']
    """

    def __init__(
        self,
        client: ClientAPI,
        record: CollectionRecord,
        embedding_function: EmbeddingFunction | None = DEFAULT_EMBEDDING_FUNCTION,
    ) -> None:
        if embedding_function is not None and not callable(embedding_function):
            raise InvalidArgument(
                f"Expected embedding_function to be callable or None, got {embedding_function!r}"
            )
        self._client = client
        self._record = record
        self._embedding_function = embedding_function
        self._handle: engines.EngineHandle | None = None

    # -- properties -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The collection's name."""
        return self._record.name

    @property
    def id(self) -> uuid.UUID:
        """The collection's id (its folder is ``<client path>/collections/<id>``)."""
        return self._record.id

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The collection metadata as given at creation (or by ``modify``), or ``None``."""
        return None if self._record.metadata is None else dict(self._record.metadata)

    @property
    def configuration(self) -> dict[str, Any]:
        """The index configuration, in the shape of Chroma's ``configuration["hnsw"]``."""
        rec = self._record
        return {
            "hnsw": {
                "space": rec.space,
                "ef_construction": rec.ef_construction,
                "ef_search": rec.ef_search,
                "max_neighbors": rec.m,
            }
        }

    @property
    def path(self) -> Path:
        """The collection's folder."""
        return self._client._collections_dir / str(self._record.id)

    def __repr__(self) -> str:
        return f"Collection(name={self.name})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Collection):
            return NotImplemented
        return (self.id, self.name, self.metadata) == (other.id, other.name, other.metadata)

    __hash__ = None  # type: ignore[assignment]

    # -- engine -----------------------------------------------------------------------------

    def _engine(self, *, create_dim: int | None = None) -> engines.Engine | None:
        """The engine, opened on first use; ``None`` while the collection has no dimension.

        With ``create_dim``, a collection without a dimension gets that one (first add).
        """
        if self._handle is not None:
            if self._handle.engine.is_deleted():
                raise NotFound(f"Collection [{self.name}] does not exist")
            return self._handle.engine
        # Checked once per open: the collection may have been deleted (by another process),
        # and another process may have fixed its dimension since this object was made.
        record = catalogue.get_by_id(self._client._db, self._record.id)
        if record is None:
            raise NotFound(f"Collection [{self.name}] does not exist")
        self._record = record
        dim = record.dimension if record.dimension is not None else create_dim
        if dim is None:
            return None
        self._handle = engines.open_engine(
            self.path,
            dim=dim,
            space=record.space,
            m=record.m,
            ef_construction=record.ef_construction,
            ef_search=record.ef_search,
            quantization=_validation.check_collection_metadata(record.metadata).get("quantization"),
        )
        if record.dimension is None:
            stored = catalogue.set_dimension(self._client._db, record.id, dim)
            self._record = CollectionRecord(**{**vars(record), "dimension": stored})
        return self._handle.engine

    def _refresh_count(self, engine: engines.Engine) -> None:
        # The engine is the source of truth; the catalogue's count is informative, so a
        # failure to record it must not turn an acknowledged write into an error.
        try:
            catalogue.set_record_count(self._client._db, self.id, engine.count())
        except FerrostoreError as err:  # pragma: no cover - the database failing after a write
            _log.warning("could not record the count of collection %s: %s", self.name, err)

    def _check_dimension(self, engine: engines.Engine | None, embeddings: NDArray[Any]) -> None:
        if engine is not None and embeddings.shape[1] != engine.dim:
            raise InvalidArgument(
                f"Collection expecting embedding with dimension of {engine.dim}, "
                f"got {embeddings.shape[1]}"
            )

    def _require_embedding_function(self) -> None:
        if self._embedding_function is None:
            raise InvalidArgument(
                "You must provide an embedding function to compute embeddings (the collection "
                "was opened with embedding_function=None): pass embeddings instead"
            )

    def _embed(self, texts: list[str], *, is_query: bool) -> NDArray[np.float32]:
        self._require_embedding_function()
        function: Any = self._embedding_function
        embed_query = getattr(function, "embed_query", None) if is_query else None
        raw = embed_query(texts) if callable(embed_query) else function(texts)
        embeddings = _validation.normalize_embeddings(
            raw, "embeddings returned by the embedding function"
        )
        if embeddings.shape[0] != len(texts):
            raise InvalidArgument(
                f"The embedding function returned {embeddings.shape[0]} embeddings for "
                f"{len(texts)} inputs"
            )
        return embeddings

    # -- writes -----------------------------------------------------------------------------

    def _write(
        self,
        mode: str,
        ids: OneOrMany[str],
        embeddings: Embeddings | None,
        metadatas: Any,
        documents: OneOrMany[str] | None,
        images: Any,
        uris: Any,
    ) -> None:
        with context(mode):
            if images is not None or uris is not None:
                raise InvalidArgument("images and uris are not supported: pass embeddings")
            valid_ids = _validation.check_ids(ids)
            vectors = None if embeddings is None else _validation.normalize_embeddings(embeddings)
            docs = _validation.check_documents(documents, nullable=vectors is not None)
            metas = _validation.check_metadatas(metadatas, allow_none_values=mode == "update")
            _validation.check_lengths(
                ids=valid_ids, embeddings=vectors, metadatas=metas, documents=docs
            )
            if vectors is None and mode != "update" and docs is None:
                raise InvalidArgument(
                    "You must provide embeddings or documents (to embed with the collection's "
                    "embedding function)"
                )
            if vectors is None and docs is not None:
                self._require_embedding_function()
            engine = self._engine()
            if vectors is not None:
                self._check_dimension(engine, vectors)
        if vectors is None and docs is not None:
            vectors = self._embed([d for d in docs if d is not None], is_query=False)
            with context(mode):
                self._check_dimension(engine, vectors)
        if engine is None:
            if mode == "update":
                raise NotFound(f"ids not found in collection [{self.name}]: {valid_ids[:10]}")
            assert vectors is not None
            engine = self._engine(create_dim=int(vectors.shape[1]))
            assert engine is not None
        engine.write(valid_ids, vectors, docs, _validation.dump_metadatas(metas), mode=mode)
        self._refresh_count(engine)
        self._record_lineage(engine, metas, len(valid_ids))

    def _record_lineage(self, engine: Any, metas: Any, count: int) -> None:
        """Record the write in lineage, with the documents' ``source`` metadata as inputs."""
        from ferrostore.lineage.recording import record_collection_write

        sources = [
            str(m["source"]) for m in (metas or []) if isinstance(m, dict) and m.get("source")
        ]
        record_collection_write(
            self._client._db,
            self.name,
            dimension=engine.dim,
            space=engine.space,
            sources=sources,
            count=count,
        )

    def add(
        self,
        ids: OneOrMany[str],
        embeddings: Embeddings | None = None,
        metadatas: OneOrMany[Any] | None = None,
        documents: OneOrMany[str] | None = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Add records, in one transaction; embed ``documents`` when no embeddings are given.

        Args:
            ids: One id or a list of unique, non-empty ids.
            embeddings: One embedding or a list (lists of numbers or NumPy arrays), or a 2-D
                array; the first add of a collection fixes its dimension.
            metadatas: One flat dict per record (str/int/float/bool values), or ``None``.
            documents: One text per record; embedded with the collection's embedding
                function when ``embeddings`` is not given.
            images: Not supported (must be ``None``).
            uris: Not supported (must be ``None``).

        Raises:
            InvalidArgument: Bad ids, embeddings, metadata or documents, unequal lengths, a
                wrong dimension, or neither embeddings nor documents.
            AlreadyExists: Some ids exist already (they are named); nothing is written.
            NotFound: The collection was deleted.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> c = chromadb.Client().create_collection("demo", embedding_function=None)
            >>> c.add(ids="x", embeddings=[0.1, 0.2], metadatas={"k": "v"})
            >>> c.count()
            1
        """
        self._write("add", ids, embeddings, metadatas, documents, images, uris)

    def upsert(
        self,
        ids: OneOrMany[str],
        embeddings: Embeddings | None = None,
        metadatas: OneOrMany[Any] | None = None,
        documents: OneOrMany[str] | None = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Add new records and update existing ones, in one transaction.

        Existing records get the given embeddings and documents; given metadata is merged
        key-wise into theirs (as ``update`` does).

        Args:
            ids: One id or a list of unique ids.
            embeddings: As in :meth:`add`; computed from ``documents`` when not given.
            metadatas: As in :meth:`add`.
            documents: As in :meth:`add`.
            images: Not supported (must be ``None``).
            uris: Not supported (must be ``None``).

        Raises:
            InvalidArgument: As in :meth:`add`.
            NotFound: The collection was deleted.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> c = chromadb.Client().create_collection("demo", embedding_function=None)
            >>> c.upsert(ids=["x", "x2"], embeddings=[[1.0], [2.0]])
            >>> c.upsert(ids="x", embeddings=[3.0], documents="three")
            >>> c.get(ids="x")["documents"]
            ['three']
        """
        self._write("upsert", ids, embeddings, metadatas, documents, images, uris)

    def update(
        self,
        ids: OneOrMany[str],
        embeddings: Embeddings | None = None,
        metadatas: OneOrMany[UpdateMetadata] | None = None,
        documents: OneOrMany[str] | None = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Update existing records, in one transaction; what is not given is kept.

        Given documents without embeddings are re-embedded. Given metadata is merged
        key-wise into the stored one; a ``None`` value deletes that key.

        Args:
            ids: One id or a list of unique ids, all existing.
            embeddings: New embeddings, or ``None`` to keep them (or to embed ``documents``).
            metadatas: Metadata changes per record (``None`` for a record keeps its metadata).
            documents: New documents, or ``None`` to keep them.
            images: Not supported (must be ``None``).
            uris: Not supported (must be ``None``).

        Raises:
            InvalidArgument: As in :meth:`add`.
            NotFound: Some ids do not exist (they are named); nothing is written.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> c = chromadb.Client().create_collection("demo", embedding_function=None)
            >>> c.add(ids="x", embeddings=[1.0], metadatas={"a": 1, "b": 2})
            >>> c.update(ids="x", metadatas={"a": None, "c": 3})
            >>> c.get(ids="x")["metadatas"]
            [{'b': 2, 'c': 3}]
        """
        self._write("update", ids, embeddings, metadatas, documents, images, uris)

    def delete(
        self,
        ids: OneOrMany[str] | None = None,
        where: Where | None = None,
        where_document: WhereDocument | None = None,
    ) -> None:
        """Delete the records that have one of ``ids`` and match both filters.

        Args:
            ids: Ids to delete (unknown ones are ignored).
            where: A metadata filter.
            where_document: A document filter.

        Raises:
            InvalidArgument: None of the three given, or a malformed argument.
            NotFound: The collection was deleted.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> c = chromadb.Client().create_collection("demo", embedding_function=None)
            >>> c.add(ids=["a", "b"], embeddings=[[1.0], [2.0]], metadatas=[{"k": 1}, {"k": 2}])
            >>> c.delete(where={"k": 1})
            >>> c.get()["ids"]
            ['b']
        """
        with context("delete"):
            empty: tuple[Any, ...] = ({}, None)
            if ids is None and where in empty and where_document in empty:
                raise InvalidArgument(
                    "At least one of ids, where, or where_document must be provided"
                )
            valid_ids = None if ids is None else _validation.check_ids(ids)
            where, where_document = _filters(where, where_document)
            engine = self._engine()
            if engine is None:
                engines.check_filters(where, where_document)
                return
            engine.delete(valid_ids, where, where_document)
        self._refresh_count(engine)

    # -- reads ------------------------------------------------------------------------------

    def count(self) -> int:
        """The number of records.

        Raises:
            NotFound: The collection was deleted.
        """
        engine = self._engine()
        return 0 if engine is None else int(engine.count())

    def get(
        self,
        ids: OneOrMany[str] | None = None,
        where: Where | None = None,
        limit: int | None = None,
        offset: int | None = None,
        where_document: WhereDocument | None = None,
        include: Sequence[IncludeItem] = _GET_INCLUDE,
    ) -> GetResult:
        """Records by id and/or filters, in insertion order; all records when none is given.

        Args:
            ids: Ids to return (unknown ones are skipped).
            where: A metadata filter, e.g. ``{"year": {"$gte": 2020}}``.
            limit: At most this many records.
            offset: Skip this many matching records first.
            where_document: A document filter, e.g. ``{"$contains": "housing"}``.
            include: Any of ``documents``, ``metadatas``, ``embeddings``, ``uris``; ids are
                always returned.

        Returns:
            A :class:`~ferrostore.vectors.types.GetResult`: fields not included are ``None``;
            ``embeddings`` is a 2-D float32 array.

        Raises:
            InvalidArgument: A malformed argument.
            NotFound: The collection was deleted.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> c = chromadb.Client().create_collection("demo", embedding_function=None)
            >>> c.add(ids=["a", "b"], embeddings=[[1.0], [2.0]], documents=["x", "y"])
            >>> c.get(ids="b", include=["documents", "embeddings"])["embeddings"]
            array([[2.]], dtype=float32)
        """
        with context("get"):
            valid_ids = None if ids is None else _validation.check_ids(ids)
            where, where_document = _filters(where, where_document)
            valid_limit, valid_offset = _validation.check_limit_offset(limit, offset)
            included = _validation.check_include(include, allow_distances=False)
            engine = self._engine()
            if engine is None or valid_limit == 0:
                engines.check_filters(where, where_document)
                dim = 0 if engine is None else engine.dim
                return _get_result([], np.empty((0, dim), np.float32), [], [], included)
            found_ids, embeddings, documents, metadatas = engine.get(
                valid_ids,
                where,
                where_document,
                valid_limit,
                valid_offset,
                "embeddings" in included,
            )
        return _get_result(found_ids, embeddings, documents, metadatas, included)

    def peek(self, limit: int = 10) -> GetResult:
        """The first ``limit`` records, with their embeddings, documents and metadata.

        Raises:
            InvalidArgument: ``limit`` is not a non-negative int.
            NotFound: The collection was deleted.
        """
        return self.get(limit=limit, include=_PEEK_INCLUDE)

    def query(
        self,
        query_embeddings: Embeddings | None = None,
        query_texts: OneOrMany[str] | None = None,
        query_images: Any = None,
        query_uris: Any = None,
        n_results: int = 10,
        where: Where | None = None,
        where_document: WhereDocument | None = None,
        include: Sequence[IncludeItem] = _QUERY_INCLUDE,
    ) -> QueryResult:
        """The ``n_results`` nearest records of each query, nearest first, among those matching.

        Args:
            query_embeddings: One embedding or several.
            query_texts: One text or several, embedded with the collection's embedding
                function (exactly one of ``query_embeddings`` and ``query_texts``).
            query_images: Not supported (must be ``None``).
            query_uris: Not supported (must be ``None``).
            n_results: Results per query, at least 1; fewer when fewer records match.
            where: A metadata filter.
            where_document: A document filter.
            include: Any of ``documents``, ``metadatas``, ``distances``, ``embeddings``,
                ``uris``; ids are always returned.

        Returns:
            A :class:`~ferrostore.vectors.types.QueryResult` with one list per query;
            distances are Chroma's (squared L2, ``1 - dot`` or ``1 - cosine``). Empty lists
            when the collection has no records.

        Raises:
            InvalidArgument: A malformed argument or a wrong dimension.
            NotFound: The collection was deleted.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> c = chromadb.Client().create_collection("demo", embedding_function=None)
            >>> c.add(ids=["a", "b"], embeddings=[[0.0, 1.0], [3.0, 4.0]])
            >>> r = c.query(query_embeddings=[[0.0, 0.0]], n_results=2)
            >>> r["ids"], r["distances"]
            ([['a', 'b']], [[1.0, 25.0]])
        """
        # The hot path of a vector database: a try block costs nothing, `with context(...)`
        # a quarter of a microsecond. Its InvalidArgument errors get the same suffix.
        try:
            if query_images is not None or query_uris is not None:
                raise InvalidArgument("query_images and query_uris are not supported")
            if (query_embeddings is None) == (query_texts is None):
                raise InvalidArgument(
                    "You must provide one of query_embeddings, query_texts, query_images, "
                    "or query_uris"
                )
            if query_embeddings is not None:
                # The engine refuses NaN and infinity in queries (naming the row).
                vectors = _validation.normalize_embeddings(
                    query_embeddings, "query_embeddings", check_finite=False
                )
            else:
                texts = _validation.check_documents(query_texts, nullable=False)
                self._require_embedding_function()
            if type(n_results) is not int or n_results < 1:
                n_results = _validation.check_n_results(n_results)
            where, where_document = _filters(where, where_document)
            included = _validation.check_include(include, allow_distances=True)
            engine = self._engine()
        except InvalidArgument as err:
            raise _validation.in_operation(err, "query") from None
        if query_embeddings is None:
            assert texts is not None
            vectors = self._embed([t for t in texts if t is not None], is_query=True)
        try:
            if engine is None:  # no engine to refuse them
                engines.check_filters(where, where_document)
                _validation.require_finite(vectors, "query_embeddings")
                n = vectors.shape[0]
                empty = np.empty((0, vectors.shape[1]), np.float32)
                return _query_result(
                    [[] for _ in range(n)],
                    [[] for _ in range(n)],
                    [[] for _ in range(n)],
                    [[] for _ in range(n)],
                    [empty] * n,
                    included,
                )
            # The engine checks the dimension, the values and the filters.
            ids, distances, documents, metadatas, embeddings = engine.query(
                vectors,
                n_results,
                where,
                where_document,
                "embeddings" in included,
                "documents" in included,
                "metadatas" in included,
            )
        except InvalidArgument as err:
            raise _validation.in_operation(err, "query") from None
        return _query_result(ids, distances, documents, metadatas, embeddings, included)

    # -- collection -------------------------------------------------------------------------

    def modify(self, name: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Rename the collection and/or replace its metadata.

        ``hnsw:search_ef`` may change; ``hnsw:space``, ``hnsw:M`` and
        ``hnsw:construction_ef`` are fixed at creation, ``ferrostore:quantization`` once the
        collection holds vectors (they may be repeated unchanged).

        Args:
            name: The new name.
            metadata: The new collection metadata (replaces the old one).

        Raises:
            InvalidArgument: A bad name or metadata, or a change of a fixed parameter.
            AlreadyExists: Another collection has that name.
            NotFound: The collection was deleted.

        Example:
            >>> import ferrostore.vectors as chromadb
            >>> c = chromadb.Client().create_collection("old")
            >>> c.modify(name="new", metadata={"owner": "search"})
            >>> c.name, c.metadata
            ('new', {'owner': 'search'})
        """
        with context("modify"):
            if name is not None:
                _validation.check_collection_name(name)
            params = _validation.check_collection_metadata(metadata)
            rec = self._record
            fixed = {"space": rec.space, "m": rec.m, "ef_construction": rec.ef_construction}
            if self._handle is not None:
                # Before the first add there is no graph yet: the metadata may still choose.
                fixed["quantization"] = self._handle.engine.quantization
            for param, current in fixed.items():
                if param in params and params[param] != current:
                    key = _PARAM_KEYS[param]
                    raise InvalidArgument(
                        f"Changing {key} of a collection once it is created is not supported "
                        f"(it is {current!r}, got {params[param]!r})"
                    )
            if name is None and metadata is None:
                return
        ef_search = params.get("ef_search")
        self._record = catalogue.modify(
            self._client._db, self.id, name=name, metadata=metadata, ef_search=ef_search
        )
        if ef_search is not None and self._handle is not None:
            self._handle.engine.set_search_ef(ef_search)

    def _drop_files(self) -> None:
        """Forget the engine and remove the folder (the catalogue row is already gone)."""
        self._handle = None
        engines.mark_deleted(self.path)
        shutil.rmtree(self.path, ignore_errors=True)


def _get_result(
    ids: list[str],
    embeddings: NDArray[np.float32] | None,
    documents: list[str | None],
    metadatas: list[str | None],
    included: list[str],
) -> GetResult:
    return {
        "ids": ids,
        "embeddings": embeddings if "embeddings" in included else None,
        "documents": documents if "documents" in included else None,
        "uris": [None] * len(ids) if "uris" in included else None,
        "data": None,
        "metadatas": _loads(metadatas) if "metadatas" in included else None,
        "included": included,
    }


def _query_result(
    ids: list[list[str]],
    distances: list[list[float]],
    documents: list[list[str | None]] | None,
    metadatas: list[list[str | None]] | None,
    embeddings: list[NDArray[np.float32]] | None,
    included: list[str],
) -> QueryResult:
    return {
        "ids": ids,
        "embeddings": embeddings if "embeddings" in included else None,
        "documents": documents if "documents" in included else None,
        "uris": [[None] * len(row) for row in ids] if "uris" in included else None,
        "data": None,
        "metadatas": (
            _loads_rows(metadatas) if metadatas is not None and "metadatas" in included else None
        ),
        "distances": distances if "distances" in included else None,
        "included": included,
    }
