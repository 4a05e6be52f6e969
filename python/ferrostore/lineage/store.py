"""``MetadataStore``: ML Metadata's API on ferrostore's shared metadata database.

Everything lives in the ``lineage_*`` tables of :mod:`ferrostore.metadata` (SQLite or
PostgreSQL). Every ``put_*`` call is one transaction, retried on serialization failures;
putting a node whose ``external_id`` exists updates that node, and
:meth:`MetadataStore.put_execution` reuses contexts by name, so concurrent publishers of the
same facts converge on one graph. Lineage queries are recursive SQL (``WITH RECURSIVE``)
over the events table, indexed both ways, never a walk in Python.

Unlike MLMD, an update merges properties: the ones given are set, the others are kept.

Example:
    >>> from ferrostore.lineage import (
    ...     Artifact, ArtifactType, Event, EventType, Execution, ExecutionType, MetadataStore)
    >>> store = MetadataStore("sqlite://")
    >>> _ = store.put_artifact_type(ArtifactType("Dataset", {"rows": "INT"}))
    >>> _ = store.put_execution_type(ExecutionType("Trainer"))
    >>> data = Artifact(type="Dataset", uri="data.parquet", properties={"rows": 3})
    >>> run, (data_id,), _ = store.put_execution(
    ...     Execution(type="Trainer", last_known_state="COMPLETE"),
    ...     [(data, Event(EventType.INPUT))], [])
    >>> [a.uri for a in store.get_lineage_subgraph(("execution", run), 1).artifacts]
    ['data.parquet']
    >>> store.close()
"""

from __future__ import annotations

import functools
import json
import os
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from ferrostore.errors import Conflict, InvalidArgument, NotFound, SchemaMismatch
from ferrostore.lineage.types import (
    Artifact,
    ArtifactState,
    ArtifactType,
    Association,
    Attribution,
    Context,
    ContextType,
    Direction,
    Event,
    EventType,
    Execution,
    ExecutionState,
    ExecutionType,
    LineageGraph,
    ParentContext,
    PropertyType,
    PropertyValue,
)
from ferrostore.metadata import MetadataDB
from ferrostore.metadata import tables as t
from ferrostore.metadata.db import SQL, DriverConnection

__all__ = ["MetadataStore", "NodeRef"]

NodeRef = Artifact | Execution | tuple[Literal["artifact", "execution"], int]
"""A start node: an artifact or execution with an id, or ``("artifact", id)``."""

N = TypeVar("N", Artifact, Execution, Context)
_TypeT = TypeVar("_TypeT", ArtifactType, ExecutionType, ContextType)
_CHUNK = 5000
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class _Kind:
    name: str
    table: sa.Table
    props: sa.Table
    node: type[Any]
    type_cls: type[Any]


_KINDS = {
    "artifact": _Kind(
        "artifact", t.lineage_artifacts, t.lineage_artifact_properties, Artifact, ArtifactType
    ),
    "execution": _Kind(
        "execution",
        t.lineage_executions,
        t.lineage_execution_properties,
        Execution,
        ExecutionType,
    ),
    "context": _Kind(
        "context", t.lineage_contexts, t.lineage_context_properties, Context, ContextType
    ),
}


def now_ms() -> int:
    """Return the current time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def _insert(conn: Connection, table: sa.Table) -> Any:
    dialect = pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect
    return dialect.insert(table)


# Write-path statements are prebuilt driver SQL (the same text on SQLite and PostgreSQL but
# for the placeholders), run on the driver's connection: SQLAlchemy's work per statement costs
# more than the statement, and a recorder runs about ten of them.
_NODE_COLUMNS = {
    "artifact": ("name", "external_id", "last_update_time", "uri", "state"),
    "execution": ("name", "external_id", "last_update_time", "state"),
    "context": ("name", "external_id", "last_update_time"),
}
_PROPERTY_COLUMNS = (
    "node_id",
    "name",
    "is_custom",
    "data_type",
    "int_value",
    "double_value",
    "string_value",
)
_EVENT_COLUMNS = (
    "artifact_id",
    "execution_id",
    "type",
    "path",
    "src_node",
    "dst_node",
    "milliseconds_since_epoch",
)
_TYPE_ID = SQL("SELECT id FROM lineage_types WHERE kind = ? AND name = ?")
_TYPE_NAME = SQL("SELECT name FROM lineage_types WHERE id = ? AND kind = ?")
_TYPE_PROPS = SQL("SELECT name, data_type FROM lineage_type_properties WHERE type_id = ?")
_ID_BY_EXTERNAL = {
    k: SQL(f"SELECT id FROM {kind.table.name} WHERE external_id = ?") for k, kind in _KINDS.items()
}
_ID_EXISTS = {
    k: SQL(f"SELECT id FROM {kind.table.name} WHERE id = ?") for k, kind in _KINDS.items()
}
_NODE_TYPE = {
    k: SQL(f"SELECT type_id FROM {kind.table.name} WHERE id = ?") for k, kind in _KINDS.items()
}
_NODE_UPDATE = {
    k: SQL(
        f"UPDATE {kind.table.name} SET {', '.join(f'{c} = ?' for c in _NODE_COLUMNS[k])} "
        "WHERE id = ?"
    )
    for k, kind in _KINDS.items()
}


def _placeholders(columns: Sequence[str]) -> str:
    return ", ".join("?" * len(columns))


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


@functools.cache
def _node_insert(kind: str, target: tuple[str, ...] | None) -> SQL:
    """``INSERT ... RETURNING id`` of a node; with ``target``, an upsert on that key.

    Parameters: type id, create time, then the :data:`_NODE_COLUMNS` of the kind. The upsert
    sets each given column to its new value unless that is NULL (kept), and only when the
    existing row has the same type (otherwise no row is returned). It leaves ``external_id``
    out: on that key it is equal already, and SQLite rewrites the index of every column set.
    """
    table = _KINDS[kind].table.name
    columns = ("type_id", "create_time", *_NODE_COLUMNS[kind])
    text = f"INSERT INTO {table} ({_quoted(columns)}) VALUES ({_placeholders(columns)})"
    if target is not None:
        kept = [c for c in _NODE_COLUMNS[kind] if c != "external_id"]
        sets = ", ".join(f'"{c}" = COALESCE(excluded."{c}", {table}."{c}")' for c in kept)
        text += (
            f" ON CONFLICT ({_quoted(target)}) DO UPDATE SET {sets}"
            f" WHERE {table}.type_id = excluded.type_id"
        )
    return SQL(text + " RETURNING id")


_PROPS_UPSERT = {
    k: SQL(
        f"INSERT INTO {kind.props.name} ({_quoted(_PROPERTY_COLUMNS)}) "
        f"VALUES ({_placeholders(_PROPERTY_COLUMNS)}) "
        'ON CONFLICT ("node_id", "name", "is_custom") DO UPDATE SET '
        + ", ".join(f'"{c}" = excluded."{c}"' for c in _PROPERTY_COLUMNS[3:])
    )
    for k, kind in _KINDS.items()
}
_INSERT_EVENT = SQL(
    f"INSERT INTO lineage_events ({_quoted(_EVENT_COLUMNS)}) "
    f"VALUES ({_placeholders(_EVENT_COLUMNS)}) "
    'ON CONFLICT ("artifact_id", "execution_id", "type") DO NOTHING'
)


@functools.cache
def _insert_link(table: str, columns: tuple[str, ...]) -> SQL:
    """The INSERT of context links into ``table`` that skips rows stored already."""
    return SQL(
        f"INSERT INTO {table} ({_quoted(columns)}) VALUES ({_placeholders(columns)}) "
        "ON CONFLICT DO NOTHING"
    )


class _Batch:
    """Writes of one unit of work deferred to its end, each table in one ``executemany``.

    Property rows, events and context links are only written, never read back, by the
    recorders, so writing them after the nodes, in the same transaction, stores the same rows.
    Rows repeating a key keep what a statement per row would have stored: the last property
    value (upsert), the first event and link (``DO NOTHING``).
    """

    def __init__(self) -> None:
        self.props: dict[str, dict[tuple[int, str, bool], tuple[Any, ...]]] = {
            k: {} for k in _KINDS
        }
        self.events: dict[tuple[int, int, str], tuple[Any, ...]] = {}
        self.links: dict[sa.Table, dict[tuple[int, int], dict[str, int]]] = {}
        # external_id -> (parameters of its last upsert, its id): an identical upsert again in
        # the same transaction changes nothing, so it is skipped.
        self.nodes: dict[tuple[str, str], tuple[Any, int]] = {}

    def link(self, table: sa.Table, rows: Iterable[dict[str, int]]) -> None:
        """Queue context links (attributions, associations, parent contexts)."""
        queued = self.links.setdefault(table, {})
        for row in rows:
            queued.setdefault(tuple(row.values()), row)

    def flush(self, conn: Connection | DriverConnection) -> None:
        """Write what was queued, in one statement per table, and forget it."""
        driver = DriverConnection.of(conn)
        for kind, rows in self.props.items():
            if rows:
                driver.executemany(_PROPS_UPSERT[kind], list(rows.values()))
                rows.clear()
        if self.events:
            driver.executemany(_INSERT_EVENT, list(self.events.values()))
            self.events.clear()
        for table, links in self.links.items():
            if links:
                _write_links(driver, table, list(links.values()))
                links.clear()


def _write_links(driver: DriverConnection, table: sa.Table, rows: Sequence[dict[str, int]]) -> None:
    """Insert context links (dicts of the same keys), skipping those stored already."""
    if rows:
        columns = tuple(rows[0])
        sql = _insert_link(table.name, columns)
        driver.executemany(sql, [tuple(row[c] for c in columns) for row in rows])


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _kind_of(node: object) -> _Kind:
    for kind in _KINDS.values():
        if type(node) is kind.node:
            return kind
    raise InvalidArgument(f"expected an Artifact, Execution or Context, got {node!r}")


def _infer_type(value: object, where: str) -> PropertyType:
    if isinstance(value, bool):
        return PropertyType.BOOLEAN
    if isinstance(value, int):
        return PropertyType.INT
    if isinstance(value, float):
        return PropertyType.DOUBLE
    if isinstance(value, str):
        return PropertyType.STRING
    if isinstance(value, dict | list):
        return PropertyType.STRUCT
    raise InvalidArgument(f"{where} = {value!r}: expected an int, float, str, bool, dict or list")


def _encode(value: object, data_type: PropertyType, where: str) -> dict[str, Any]:
    """Return the column values storing ``value`` as ``data_type``; raise when it does not fit."""
    row: dict[str, Any] = {"int_value": None, "double_value": None, "string_value": None}
    ok = True
    if data_type is PropertyType.INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not _INT64[0] <= cast(int, value) <= _INT64[1]:
            raise InvalidArgument(f"{where} = {value!r} does not fit in a 64-bit integer")
        row["int_value"] = value
    elif data_type is PropertyType.DOUBLE:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        row["double_value"] = float(cast(float, value)) if ok else None
    elif data_type is PropertyType.STRING:
        ok = isinstance(value, str)
        row["string_value"] = value
    elif data_type is PropertyType.BOOLEAN:
        ok = isinstance(value, bool)
        row["int_value"] = int(cast(bool, value)) if ok else None
    else:
        ok = isinstance(value, dict | list)
        if ok:
            try:
                row["string_value"] = json.dumps(value, sort_keys=True, default=None)
            except (TypeError, ValueError) as err:
                raise InvalidArgument(f"{where} = {value!r} is not JSON: {err}") from err
    if not ok:
        raise SchemaMismatch(f"{where} = {value!r} does not match its declared type {data_type}")
    return row


def _decode(row: Any) -> PropertyValue:
    data_type = PropertyType(row.data_type)
    if data_type is PropertyType.INT:
        return int(row.int_value)
    if data_type is PropertyType.DOUBLE:
        return float(row.double_value)
    if data_type is PropertyType.BOOLEAN:
        return bool(row.int_value)
    if data_type is PropertyType.STRING:
        return str(row.string_value)
    return cast(PropertyValue, json.loads(row.string_value))


def _node_key(kind: str, node_id: int) -> int:
    return 2 * node_id + (1 if kind == "execution" else 0)


def _check_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{what} must be a positive integer id, got {value!r}")
    return value


def _ids(values: Iterable[object], what: str) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidArgument(f"{what} must be a list of integer ids, got {values!r}")
    return [_check_id(v, what) for v in values]


class MetadataStore:
    """ML Metadata's store (types, artifacts, executions, contexts, events, lineage) in SQL.

    Args:
        uri: The metadata database: a SQLite path, ``sqlite://`` (in memory), a
            ``postgresql://`` URL, or an open :class:`~ferrostore.metadata.MetadataDB`
            (shared, not closed by :meth:`close`).

    Raises:
        InvalidArgument: An unsupported URL.
        StorageError: The database cannot be opened.

    Example:
        >>> with MetadataStore("sqlite://") as store:
        ...     store.get_artifacts()
        []
    """

    def __init__(self, uri: str | os.PathLike[str] | MetadataDB) -> None:
        if isinstance(uri, MetadataDB):
            self._db, self._owns_db = uri, False
        else:
            self._db, self._owns_db = MetadataDB(uri), True
        self._type_names: dict[int, str] = {}
        # (kind, name) -> (type id, declared properties), read in committed state only: types
        # are never deleted nor retyped, and a property missing here is looked up again.
        self._types_seen: dict[tuple[str, str], tuple[int, dict[str, PropertyType]]] = {}
        # Connections that wrote types: what they read may roll back, so it is not cached.
        self._type_writers: weakref.WeakSet[Connection] = weakref.WeakSet()

    @property
    def db(self) -> MetadataDB:
        """The underlying metadata database."""
        return self._db

    def close(self) -> None:
        """Close the database (unless it was given open). The store must not be used after."""
        if self._owns_db:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self._db.url!r})"

    # ------------------------------------------------------------------ types

    def put_artifact_type(self, artifact_type: ArtifactType, *, can_add_fields: bool = True) -> int:
        """Create an artifact type, or check and extend the existing one of that name.

        Adding properties to an existing type is allowed (unless ``can_add_fields=False``);
        changing a property's type is refused. Properties the stored type has and the given
        one omits are kept.

        Args:
            artifact_type: The type.
            can_add_fields: Allow new properties on an existing type.

        Returns:
            The type's id.

        Raises:
            InvalidArgument: Not an :class:`ArtifactType`.
            SchemaMismatch: A property would change type, or be added when not allowed.

        Example:
            >>> with MetadataStore("sqlite://") as s:
            ...     s.put_artifact_type(ArtifactType("Model")) == s.put_artifact_type(
            ...         ArtifactType("Model", {"framework": "STRING"}))
            True
        """
        return self._put_type_checked(artifact_type, ArtifactType, can_add_fields)

    def put_execution_type(
        self, execution_type: ExecutionType, *, can_add_fields: bool = True
    ) -> int:
        """Create or extend an execution type; see :meth:`put_artifact_type`."""
        return self._put_type_checked(execution_type, ExecutionType, can_add_fields)

    def put_context_type(self, context_type: ContextType, *, can_add_fields: bool = True) -> int:
        """Create or extend a context type; see :meth:`put_artifact_type`."""
        return self._put_type_checked(context_type, ContextType, can_add_fields)

    def _put_type_checked(self, value: Any, cls: type[Any], can_add: bool) -> int:
        if not isinstance(value, cls):
            raise InvalidArgument(f"expected a {cls.__name__}, got {value!r}")
        return self._db.run_in_transaction(lambda conn: self._put_type(conn, value, can_add))

    def _put_type(self, conn: Connection, value: Any, can_add: bool = True) -> int:
        lt, tp = t.lineage_types.c, t.lineage_type_properties.c
        self._type_writers.add(conn)
        conn.execute(
            _insert(conn, t.lineage_types)
            .values(
                kind=value.kind,
                name=value.name,
                description=value.description,
                base_type=value.base_type,
                create_time=now_ms(),
            )
            .on_conflict_do_nothing(index_elements=["kind", "name"])
        )
        type_id = int(
            conn.execute(
                sa.select(lt.id).where(lt.kind == value.kind, lt.name == value.name)
            ).scalar_one()
        )
        stored = self._type_properties(conn, type_id)
        new = {}
        for key, data_type in value.properties.items():
            if key in stored and stored[key] != data_type:
                raise SchemaMismatch(
                    f"{value.kind} type {value.name!r}: property {key!r} is {stored[key]}; "
                    f"it cannot be retyped to {data_type}"
                )
            if key not in stored:
                if not can_add:
                    raise SchemaMismatch(
                        f"{value.kind} type {value.name!r} has no property {key!r} and "
                        "can_add_fields is False"
                    )
                new[key] = data_type
        if new:
            conn.execute(
                _insert(conn, t.lineage_type_properties).on_conflict_do_nothing(),
                [{"type_id": type_id, "name": k, "data_type": str(v)} for k, v in new.items()],
            )
            now_stored = self._type_properties(conn, type_id)
            for key, data_type in new.items():
                if now_stored[key] != data_type:  # a concurrent writer declared it first
                    raise SchemaMismatch(
                        f"{value.kind} type {value.name!r}: property {key!r} is "
                        f"{now_stored[key]}; it cannot be retyped to {data_type}"
                    )
        del tp
        self._type_names[type_id] = value.name
        return type_id

    @staticmethod
    def _type_properties(
        conn: Connection | DriverConnection, type_id: int
    ) -> dict[str, PropertyType]:
        rows = DriverConnection.of(conn).all(_TYPE_PROPS, (type_id,))
        return {name: PropertyType(data_type) for name, data_type in rows}

    def _get_type(self, kind: str, name: str) -> Any:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"{kind} type name must be a non-empty string, got {name!r}")
        types = self._read(lambda conn: self._types(conn, kind, name))
        if not types:
            raise NotFound(f"{kind} type {name!r} does not exist")
        return types[0]

    def _types(self, conn: Connection, kind: str, name: str | None = None) -> list[Any]:
        lt = t.lineage_types.c
        query = sa.select(t.lineage_types).where(lt.kind == kind).order_by(lt.id)
        if name is not None:
            query = query.where(lt.name == name)
        out = []
        for row in conn.execute(query).all():
            cls = _KINDS[kind].type_cls
            out.append(
                cls(
                    name=row.name,
                    properties=self._type_properties(conn, row.id),
                    description=row.description,
                    base_type=row.base_type,
                    id=int(row.id),
                )
            )
        return out

    def get_artifact_type(self, type_name: str) -> ArtifactType:
        """Return the artifact type of this name. Raises NotFound."""
        return cast(ArtifactType, self._get_type("artifact", type_name))

    def get_execution_type(self, type_name: str) -> ExecutionType:
        """Return the execution type of this name. Raises NotFound."""
        return cast(ExecutionType, self._get_type("execution", type_name))

    def get_context_type(self, type_name: str) -> ContextType:
        """Return the context type of this name. Raises NotFound."""
        return cast(ContextType, self._get_type("context", type_name))

    def get_artifact_types(self) -> list[ArtifactType]:
        """Return every artifact type, oldest first."""
        return self._read(lambda conn: self._types(conn, "artifact"))

    def get_execution_types(self) -> list[ExecutionType]:
        """Return every execution type, oldest first."""
        return self._read(lambda conn: self._types(conn, "execution"))

    def get_context_types(self) -> list[ContextType]:
        """Return every context type, oldest first."""
        return self._read(lambda conn: self._types(conn, "context"))

    # ------------------------------------------------------------------ nodes

    def _resolve_type(
        self, conn: Connection | DriverConnection, kind: _Kind, node: Any
    ) -> tuple[int, str, dict[str, PropertyType]]:
        """Return the node's type id, name and declared properties (maybe cached)."""
        driver = DriverConnection.of(conn)
        if node.type_id is not None:
            type_id = _check_id(node.type_id, f"{kind.name} type_id")
            type_name = driver.scalar(_TYPE_NAME, (type_id, kind.name))
            if type_name is None:
                raise NotFound(f"{kind.name} type id {type_id} does not exist")
            if node.type is not None and node.type != type_name:
                raise InvalidArgument(
                    f"{kind.name} has type_id {type_id} ({type_name!r}) but type {node.type!r}"
                )
            return type_id, str(type_name), self._type_properties(driver, type_id)
        if not isinstance(node.type, str) or not node.type:
            raise InvalidArgument(f"{kind.name} {node!r} needs a type_id or a type name")
        key = (kind.name, node.type)
        cacheable = conn not in self._type_writers
        seen = self._types_seen.get(key) if cacheable else None
        if seen is not None:
            return seen[0], node.type, seen[1]
        found = driver.scalar(_TYPE_ID, (kind.name, node.type))
        if found is None:
            raise NotFound(
                f"{kind.name} type {node.type!r} does not exist: put_{kind.name}_type it first"
            )
        declared = self._type_properties(driver, int(found))
        if cacheable:
            self._types_seen[key] = (int(found), declared)
        return int(found), node.type, declared

    def _property_rows(
        self,
        conn: Connection | DriverConnection,
        kind: _Kind,
        node: Any,
        type_id: int,
        type_name: str,
        declared: dict[str, PropertyType],
    ) -> list[tuple[Any, ...]]:
        """Return the property rows of a node: name, is_custom, then the stored columns.

        The columns follow ``node_id`` in :data:`_PROPERTY_COLUMNS`.
        """

        def where(key: object) -> str:
            return f"{kind.name} {node.name or ''!s} ({type_name}) property {key!r}".replace(
                "  ", " "
            )

        rows = []
        fresh = False
        for custom, values in ((False, node.properties), (True, node.custom_properties)):
            if not isinstance(values, Mapping):
                raise InvalidArgument(f"{kind.name} properties must be a dict, got {values!r}")
            for key, value in values.items():
                if not isinstance(key, str) or not key:
                    raise InvalidArgument(f"{where(key)}: property names must be non-empty strings")
                if custom:
                    data_type = _infer_type(value, where(key))
                else:
                    if key not in declared and not fresh:
                        # Declared since it was cached, maybe by another process.
                        declared, fresh = self._type_properties(conn, type_id), True
                        if conn not in self._type_writers:
                            self._types_seen[(kind.name, type_name)] = (type_id, declared)
                    if key not in declared:
                        raise SchemaMismatch(
                            f"{where(key)} is not declared by the type (declared: "
                            f"{', '.join(sorted(declared)) or 'none'}); use custom_properties"
                        )
                    data_type = declared[key]
                if data_type is PropertyType.STRING and type(value) is str:
                    encoded: tuple[Any, ...] = (None, None, value)  # the common case
                else:
                    encoded = tuple(_encode(value, data_type, where(key)).values())
                rows.append((key, custom, str(data_type), *encoded))
        return rows

    def _put_node(
        self,
        conn: Connection | DriverConnection,
        node: Any,
        now: int,
        *,
        reuse_by_name: bool = False,
        batch: _Batch | None = None,
    ) -> int:
        """Create or update a node and return its id (see :meth:`put_artifacts`).

        With ``batch``, its properties are queued there instead of written now.
        """
        kind = _kind_of(node)
        driver = DriverConnection.of(conn)
        type_id, type_name, declared = self._resolve_type(conn, kind, node)
        if node.name is not None and (not isinstance(node.name, str) or not node.name):
            raise InvalidArgument(f"{kind.name} name must be a non-empty string or None")
        if kind.name == "context" and not node.name:
            raise InvalidArgument(f"a context needs a name, got {node!r}")
        if node.external_id is not None and (
            not isinstance(node.external_id, str) or not node.external_id
        ):
            raise InvalidArgument(f"{kind.name} external_id must be a non-empty string or None")
        values: dict[str, Any] = {
            "name": node.name,
            "external_id": node.external_id,
            "last_update_time": now,
        }
        if kind.name == "artifact":
            if node.uri is not None and not isinstance(node.uri, str):
                raise InvalidArgument(f"artifact uri must be a string, got {node.uri!r}")
            values["uri"] = node.uri
            values["state"] = str(_enum(ArtifactState, node.state, "artifact state"))
        elif kind.name == "execution":
            values["state"] = str(
                _enum(ExecutionState, node.last_known_state, "execution last_known_state")
            )
        props = self._property_rows(conn, kind, node, type_id, type_name, declared)
        if node.id is not None:
            node_id = _check_id(node.id, f"{kind.name} id")
            current = driver.scalar(_NODE_TYPE[kind.name], (node_id,))
            if current is None:
                raise NotFound(f"{kind.name} {node_id} does not exist")
            if int(current) != type_id:
                raise InvalidArgument(f"{kind.name} {node_id}: its type cannot be changed")
            driver.execute(_NODE_UPDATE[kind.name], (*values.values(), node_id))
            if batch is not None:
                batch.nodes.clear()
        else:
            target: tuple[str, ...] | None = None
            if node.external_id is not None:
                target = ("external_id",)
            elif reuse_by_name and node.name is not None:
                target = ("type_id", "name")
            params = (type_id, now, *values.values())
            memo_key = (kind.name, node.external_id) if target == ("external_id",) else None
            memo_value = (params, props)
            seen = None
            if batch is not None:
                if memo_key is None:  # it may write a row memoized under its external_id
                    batch.nodes.clear()
                else:
                    seen = batch.nodes.get(memo_key)
            if seen is not None and seen[0] == memo_value:
                return seen[1]
            found = driver.scalar(_node_insert(kind.name, target), params)
            if found is None:
                raise Conflict(
                    f"{kind.name} with external_id {node.external_id!r} exists with another "
                    f"type than {type_name!r}"
                )
            node_id = int(found)
            if batch is not None and memo_key is not None:
                batch.nodes[memo_key] = (memo_value, node_id)
        if batch is not None:
            queued = batch.props[kind.name]
            for row in props:
                queued[(node_id, row[0], row[1])] = (node_id, *row)
        elif props:
            driver.executemany(_PROPS_UPSERT[kind.name], [(node_id, *row) for row in props])
        return node_id

    def _ensure_node(
        self,
        conn: Connection | DriverConnection,
        node: Any,
        now: int,
        *,
        batch: _Batch | None = None,
    ) -> int:
        """Return the id of the node with ``node.external_id``, creating it only if missing."""
        kind = _kind_of(node)
        found = DriverConnection.of(conn).scalar(_ID_BY_EXTERNAL[kind.name], (node.external_id,))
        if found is not None:
            return int(found)
        return self._put_node(conn, node, now, batch=batch)

    def _put_many(self, nodes: Sequence[Any], cls: type[Any]) -> list[int]:
        if isinstance(nodes, cls) or not isinstance(nodes, Sequence):
            raise InvalidArgument(f"expected a list of {cls.__name__}, got {nodes!r}")
        for node in nodes:
            if type(node) is not cls:
                raise InvalidArgument(f"expected a {cls.__name__}, got {node!r}")

        def work(conn: Connection) -> list[int]:
            now = now_ms()
            batch = _Batch()
            ids = [self._put_node(conn, node, now, batch=batch) for node in nodes]
            batch.flush(conn)
            return ids

        return self._db.run_in_transaction(work)

    def put_artifacts(self, artifacts: Sequence[Artifact]) -> list[int]:
        """Create or update artifacts in one transaction.

        An artifact with an ``id`` is updated; one whose ``external_id`` exists updates that
        artifact; any other is created. Declared properties are checked against the type.

        Args:
            artifacts: The artifacts.

        Returns:
            Their ids, in order.

        Raises:
            NotFound: An unknown type or id.
            SchemaMismatch: An undeclared property or a value of the wrong type.
            AlreadyExists: Another artifact of the type has that name.
            Conflict: The external id belongs to an artifact of another type.
        """
        return self._put_many(artifacts, Artifact)

    def put_executions(self, executions: Sequence[Execution]) -> list[int]:
        """Create or update executions; see :meth:`put_artifacts`."""
        return self._put_many(executions, Execution)

    def put_contexts(self, contexts: Sequence[Context]) -> list[int]:
        """Create or update contexts; see :meth:`put_artifacts` (names are required)."""
        return self._put_many(contexts, Context)

    def _put_event(
        self,
        conn: Connection | DriverConnection,
        event: Event,
        now: int,
        *,
        batch: _Batch | None = None,
    ) -> None:
        """Record an event; with ``batch``, queue it there.

        Queued events skip the existence checks: their ids must come from this transaction
        (just written or read), and the foreign keys still refuse any other.
        """
        if not isinstance(event, Event):
            raise InvalidArgument(f"expected an Event, got {event!r}")
        kind = _enum(EventType, event.type, "event type")
        artifact_id = _check_id(event.artifact_id, "event artifact_id")
        execution_id = _check_id(event.execution_id, "event execution_id")
        path = list(event.path or [])
        for step in path:
            if isinstance(step, bool) or not isinstance(step, int | str):
                raise InvalidArgument(f"event path step {step!r} must be an int or a str")
        a, e = _node_key("artifact", artifact_id), _node_key("execution", execution_id)
        src, dst = (a, e) if kind.is_input else (e, a)
        row = (  # in the order of _EVENT_COLUMNS
            artifact_id,
            execution_id,
            str(kind),
            json.dumps(path) if path else None,
            src,
            dst,
            event.milliseconds_since_epoch or now,
        )
        if batch is not None:
            batch.events.setdefault((artifact_id, execution_id, row[2]), row)
            return
        driver = DriverConnection.of(conn)
        for node_id, what in ((artifact_id, "artifact"), (execution_id, "execution")):
            if driver.first(_ID_EXISTS[what], (node_id,)) is None:
                raise NotFound(f"event refers to {what} {node_id}, which does not exist")
        driver.execute(_INSERT_EVENT, row)

    def put_events(self, events: Sequence[Event]) -> None:
        """Record events (idempotent: the same artifact, execution and type is stored once).

        Raises:
            InvalidArgument: A missing id or a bad type or path.
            NotFound: An unknown artifact or execution.
        """
        if not isinstance(events, Sequence):
            raise InvalidArgument(f"expected a list of Event, got {events!r}")

        def work(conn: Connection) -> None:
            now = now_ms()
            for event in events:
                self._put_event(conn, event, now)

        self._db.run_in_transaction(work)

    def _link(self, conn: Connection, table: sa.Table, rows: list[dict[str, int]]) -> None:
        _write_links(DriverConnection.of(conn), table, rows)

    def put_attributions_and_associations(
        self, attributions: Sequence[Attribution], associations: Sequence[Association]
    ) -> None:
        """Put artifacts and executions in contexts (idempotent).

        Raises:
            InvalidArgument: A malformed link.
            Conflict: An unknown context, artifact or execution.
        """
        attr = [
            {
                "context_id": _check_id(a.context_id, "context_id"),
                "artifact_id": _check_id(a.artifact_id, "artifact_id"),
            }
            for a in attributions
        ]
        assoc = [
            {
                "context_id": _check_id(a.context_id, "context_id"),
                "execution_id": _check_id(a.execution_id, "execution_id"),
            }
            for a in associations
        ]

        def work(conn: Connection) -> None:
            self._link(conn, t.lineage_attributions, attr)
            self._link(conn, t.lineage_associations, assoc)

        self._db.run_in_transaction(work)

    def put_parent_contexts(self, parent_contexts: Sequence[ParentContext]) -> None:
        """Nest contexts in parent contexts (idempotent). Cycles are refused.

        Raises:
            InvalidArgument: A context would become its own ancestor.
            Conflict: An unknown context.
        """
        pairs = [
            (_check_id(p.child_id, "child_id"), _check_id(p.parent_id, "parent_id"))
            for p in parent_contexts
        ]

        def work(conn: Connection) -> None:
            for child, parent in pairs:
                if child == parent or child in self._ancestors(conn, parent):
                    raise InvalidArgument(
                        f"context {parent} cannot be a parent of context {child}: it would "
                        "create a cycle"
                    )
                self._link(
                    conn,
                    t.lineage_parent_contexts,
                    [{"context_id": child, "parent_context_id": parent}],
                )

        self._db.run_in_transaction(work)

    @staticmethod
    def _ancestors(conn: Connection, context_id: int) -> set[int]:
        rows = conn.execute(
            sa.text(
                "WITH RECURSIVE up(id) AS (SELECT CAST(:start AS BIGINT) UNION "
                "SELECT p.parent_context_id FROM up JOIN lineage_parent_contexts p "
                "ON p.context_id = up.id) SELECT id FROM up"
            ),
            {"start": context_id},
        )
        return {int(r[0]) for r in rows}

    def put_execution(
        self,
        execution: Execution,
        artifact_and_events: Sequence[tuple[Artifact, Event | None]],
        contexts: Sequence[Context],
        *,
        reuse_context_if_already_exist: bool = True,
    ) -> tuple[int, list[int], list[int]]:
        """Record an execution with its input/output artifacts and contexts, atomically.

        In one transaction: the execution, each artifact (created, or updated when it has an
        id or a known ``external_id``), each event (its ids filled in), and each context
        (reused by name when it exists), with attributions and associations linking them.
        Publishers racing with the same external ids and context names converge: every one
        gets the same ids and nothing is stored twice.

        Args:
            execution: The execution.
            artifact_and_events: ``(artifact, event)`` pairs; ``event`` may be ``None`` to
                put an artifact without linking it.
            contexts: Contexts the execution and artifacts belong to.
            reuse_context_if_already_exist: Reuse a context of the same type and name
                (default, as MLMD's option of that name); False raises AlreadyExists.

        Returns:
            ``(execution_id, artifact_ids, context_ids)``.

        Raises:
            InvalidArgument, NotFound, SchemaMismatch, AlreadyExists, Conflict: As for the
                individual ``put_*`` calls; nothing is written.
        """
        if not isinstance(execution, Execution):
            raise InvalidArgument(f"expected an Execution, got {execution!r}")
        pairs = list(artifact_and_events)
        for pair in pairs:
            if (
                not isinstance(pair, tuple)
                or len(pair) != 2
                or not isinstance(pair[0], Artifact)
                or not (pair[1] is None or isinstance(pair[1], Event))
            ):
                raise InvalidArgument(f"expected (Artifact, Event | None) pairs, got {pair!r}")
        for context in contexts:
            if not isinstance(context, Context):
                raise InvalidArgument(f"expected a Context, got {context!r}")

        def work(conn: Connection) -> tuple[int, list[int], list[int]]:
            return self._put_execution(
                conn, execution, pairs, list(contexts), reuse=reuse_context_if_already_exist
            )

        return self._db.run_in_transaction(work)

    def _put_execution(
        self,
        conn: Connection,
        execution: Execution,
        pairs: Sequence[tuple[Artifact, Event | None]],
        contexts: Sequence[Context],
        *,
        reuse: bool = True,
    ) -> tuple[int, list[int], list[int]]:
        now = now_ms()
        batch = _Batch()
        execution_id = self._put_node(conn, execution, now, batch=batch)
        artifact_ids = []
        for artifact, event in pairs:
            artifact_id = self._put_node(conn, artifact, now, batch=batch)
            artifact_ids.append(artifact_id)
            if event is not None:
                linked = Event(
                    type=event.type,
                    artifact_id=artifact_id,
                    execution_id=execution_id,
                    path=event.path,
                    milliseconds_since_epoch=event.milliseconds_since_epoch,
                )
                self._put_event(conn, linked, now, batch=batch)
        context_ids = [
            self._put_node(conn, c, now, reuse_by_name=reuse, batch=batch) for c in contexts
        ]
        for context_id in context_ids:
            batch.link(
                t.lineage_attributions,
                [{"context_id": context_id, "artifact_id": a} for a in dict.fromkeys(artifact_ids)],
            )
            batch.link(
                t.lineage_associations, [{"context_id": context_id, "execution_id": execution_id}]
            )
        batch.flush(conn)
        return execution_id, artifact_ids, context_ids

    # ------------------------------------------------------------------ reads

    def _read(self, fn: Any) -> Any:
        return self._db.run_in_transaction(fn, readonly=True)

    def _type_name_map(self, conn: Connection, type_ids: Iterable[int]) -> dict[int, str]:
        missing = {i for i in type_ids if i not in self._type_names}
        if missing:
            lt = t.lineage_types.c
            for type_id, name in conn.execute(
                sa.select(lt.id, lt.name).where(lt.id.in_(sorted(missing)))
            ):
                self._type_names[int(type_id)] = str(name)
        return self._type_names

    def _load(self, conn: Connection, kind: _Kind, rows: Sequence[Any]) -> list[Any]:
        if not rows:
            return []
        ids = [int(r.id) for r in rows]
        props: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {i: ({}, {}) for i in ids}
        pc = kind.props.c
        for chunk in _chunks(ids):
            for prow in conn.execute(sa.select(kind.props).where(pc.node_id.in_(chunk))):
                props[int(prow.node_id)][1 if prow.is_custom else 0][prow.name] = _decode(prow)
        names = self._type_name_map(conn, {int(r.type_id) for r in rows})
        out = []
        for row in rows:
            declared, custom = props[int(row.id)]
            common: dict[str, Any] = {
                "type_id": int(row.type_id),
                "type": names[int(row.type_id)],
                "name": row.name,
                "properties": declared,
                "custom_properties": custom,
                "external_id": row.external_id,
                "id": int(row.id),
                "create_time_since_epoch": int(row.create_time),
                "last_update_time_since_epoch": int(row.last_update_time),
            }
            if kind.name == "artifact":
                out.append(Artifact(**common, uri=row.uri, state=ArtifactState(row.state)))
            elif kind.name == "execution":
                out.append(Execution(**common, last_known_state=ExecutionState(row.state)))
            else:
                out.append(Context(**common))
        return out

    def _list(
        self,
        kind_name: str,
        *,
        ids: Sequence[int] | None = None,
        type_name: str | None = None,
        name: str | None = None,
        uri: str | None = None,
        state: str | None = None,
        external_ids: Sequence[str] | None = None,
        properties: Mapping[str, PropertyValue] | None = None,
        custom_properties: Mapping[str, PropertyValue] | None = None,
        context_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
        descending: bool = False,
    ) -> list[Any]:
        kind = _KINDS[kind_name]
        col = kind.table.c
        query = sa.select(kind.table)
        if ids is not None:
            query = query.where(col.id.in_(_ids(ids, f"{kind_name} ids")))
        if type_name is not None:
            lt = t.lineage_types.c
            query = query.where(
                col.type_id.in_(sa.select(lt.id).where(lt.kind == kind_name, lt.name == type_name))
            )
        if name is not None:
            query = query.where(col.name == name)
        if uri is not None:
            if kind_name != "artifact":
                raise InvalidArgument("only artifacts have a uri")
            query = query.where(col.uri == uri)
        if state is not None:
            enum_cls = ArtifactState if kind_name == "artifact" else ExecutionState
            query = query.where(col.state == str(_enum(enum_cls, state, f"{kind_name} state")))
        if external_ids is not None:
            if isinstance(external_ids, str):
                raise InvalidArgument("external_ids must be a list of strings")
            query = query.where(col.external_id.in_(list(external_ids)))
        for custom, filters in ((False, properties), (True, custom_properties)):
            for key, value in (filters or {}).items():
                pc = kind.props.c
                data_type = _infer_type(value, f"filter on property {key!r}")
                encoded = _encode(value, data_type, f"filter on property {key!r}")
                conds = [pc.name == key, pc.is_custom == custom]
                if data_type is PropertyType.DOUBLE:
                    conds.append(pc.double_value == encoded["double_value"])
                elif data_type in (PropertyType.INT, PropertyType.BOOLEAN):
                    conds.append(pc.int_value == encoded["int_value"])
                else:
                    conds.append(pc.string_value == encoded["string_value"])
                query = query.where(col.id.in_(sa.select(pc.node_id).where(*conds)))
        if context_id is not None:
            link = t.lineage_attributions if kind_name == "artifact" else t.lineage_associations
            if kind_name == "context":
                raise InvalidArgument("use get_children_contexts_by_context for contexts")
            other = link.c.artifact_id if kind_name == "artifact" else link.c.execution_id
            query = query.where(col.id.in_(sa.select(other).where(link.c.context_id == context_id)))
        if order_by not in ("id", "create_time", "last_update_time", "name"):
            raise InvalidArgument(
                f"order_by {order_by!r}: expected id, create_time, last_update_time or name"
            )
        order = col[order_by].desc() if descending else col[order_by].asc()
        query = query.order_by(order, col.id.desc() if descending else col.id.asc())
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        return cast(
            list[Any], self._read(lambda conn: self._load(conn, kind, conn.execute(query).all()))
        )

    def get_artifacts(
        self,
        *,
        type_name: str | None = None,
        name: str | None = None,
        uri: str | None = None,
        state: ArtifactState | str | None = None,
        external_ids: Sequence[str] | None = None,
        properties: Mapping[str, PropertyValue] | None = None,
        custom_properties: Mapping[str, PropertyValue] | None = None,
        context_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
        descending: bool = False,
    ) -> list[Artifact]:
        """List artifacts matching every filter given (all of them when none is).

        Args:
            type_name: Of this type.
            name: With this name.
            uri: With this uri.
            state: In this state.
            external_ids: With one of these external ids.
            properties: Declared properties equal to these values.
            custom_properties: Custom properties equal to these values.
            context_id: Attributed to this context.
            limit: At most this many.
            offset: Skip this many first.
            order_by: ``id`` (default), ``create_time``, ``last_update_time`` or ``name``.
            descending: Newest / largest first.

        Returns:
            The artifacts.

        Raises:
            InvalidArgument: A malformed filter.

        Example:
            >>> with MetadataStore("sqlite://") as s:
            ...     s.get_artifacts(type_name="Dataset", limit=10)
            []
        """
        return cast(
            list[Artifact],
            self._list(
                "artifact",
                type_name=type_name,
                name=name,
                uri=uri,
                state=state,
                external_ids=external_ids,
                properties=properties,
                custom_properties=custom_properties,
                context_id=context_id,
                limit=limit,
                offset=offset,
                order_by=order_by,
                descending=descending,
            ),
        )

    def get_executions(
        self,
        *,
        type_name: str | None = None,
        name: str | None = None,
        state: ExecutionState | str | None = None,
        external_ids: Sequence[str] | None = None,
        properties: Mapping[str, PropertyValue] | None = None,
        custom_properties: Mapping[str, PropertyValue] | None = None,
        context_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
        descending: bool = False,
    ) -> list[Execution]:
        """List executions matching every filter given; see :meth:`get_artifacts`."""
        return cast(
            list[Execution],
            self._list(
                "execution",
                type_name=type_name,
                name=name,
                state=state,
                external_ids=external_ids,
                properties=properties,
                custom_properties=custom_properties,
                context_id=context_id,
                limit=limit,
                offset=offset,
                order_by=order_by,
                descending=descending,
            ),
        )

    def get_contexts(
        self,
        *,
        type_name: str | None = None,
        name: str | None = None,
        external_ids: Sequence[str] | None = None,
        properties: Mapping[str, PropertyValue] | None = None,
        custom_properties: Mapping[str, PropertyValue] | None = None,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
        descending: bool = False,
    ) -> list[Context]:
        """List contexts matching every filter given; see :meth:`get_artifacts`."""
        return cast(
            list[Context],
            self._list(
                "context",
                type_name=type_name,
                name=name,
                external_ids=external_ids,
                properties=properties,
                custom_properties=custom_properties,
                limit=limit,
                offset=offset,
                order_by=order_by,
                descending=descending,
            ),
        )

    def get_artifacts_by_id(self, artifact_ids: Sequence[int]) -> list[Artifact]:
        """Return the artifacts with these ids (unknown ids are skipped), by id."""
        return cast(list[Artifact], self._list("artifact", ids=artifact_ids))

    def get_executions_by_id(self, execution_ids: Sequence[int]) -> list[Execution]:
        """Return the executions with these ids (unknown ids are skipped), by id."""
        return cast(list[Execution], self._list("execution", ids=execution_ids))

    def get_contexts_by_id(self, context_ids: Sequence[int]) -> list[Context]:
        """Return the contexts with these ids (unknown ids are skipped), by id."""
        return cast(list[Context], self._list("context", ids=context_ids))

    def get_artifact_by_type_and_name(self, type_name: str, name: str) -> Artifact | None:
        """Return the artifact of this type and name, or ``None``."""
        found = self.get_artifacts(type_name=type_name, name=name)
        return found[0] if found else None

    def get_execution_by_type_and_name(self, type_name: str, name: str) -> Execution | None:
        """Return the execution of this type and name, or ``None``."""
        found = self.get_executions(type_name=type_name, name=name)
        return found[0] if found else None

    def get_context_by_type_and_name(self, type_name: str, name: str) -> Context | None:
        """Return the context of this type and name, or ``None``."""
        found = self.get_contexts(type_name=type_name, name=name)
        return found[0] if found else None

    def get_artifacts_by_context(self, context_id: int) -> list[Artifact]:
        """Return the artifacts attributed to a context."""
        return self.get_artifacts(context_id=_check_id(context_id, "context_id"))

    def get_executions_by_context(self, context_id: int) -> list[Execution]:
        """Return the executions associated with a context."""
        return self.get_executions(context_id=_check_id(context_id, "context_id"))

    def _contexts_via(self, table: sa.Table, column: str, value: int, select: str) -> list[Context]:
        c = table.c

        def work(conn: Connection) -> list[Context]:
            ids = [int(r[0]) for r in conn.execute(sa.select(c[select]).where(c[column] == value))]
            lc = t.lineage_contexts.c
            rows = conn.execute(
                sa.select(t.lineage_contexts).where(lc.id.in_(ids)).order_by(lc.id)
            ).all()
            return cast(list[Context], self._load(conn, _KINDS["context"], rows))

        return cast(list[Context], self._read(work))

    def get_contexts_by_artifact(self, artifact_id: int) -> list[Context]:
        """Return the contexts an artifact is attributed to."""
        aid = _check_id(artifact_id, "artifact_id")
        return self._contexts_via(t.lineage_attributions, "artifact_id", aid, "context_id")

    def get_contexts_by_execution(self, execution_id: int) -> list[Context]:
        """Return the contexts an execution is associated with."""
        eid = _check_id(execution_id, "execution_id")
        return self._contexts_via(t.lineage_associations, "execution_id", eid, "context_id")

    def get_parent_contexts_by_context(self, context_id: int) -> list[Context]:
        """Return a context's parents."""
        cid = _check_id(context_id, "context_id")
        return self._contexts_via(t.lineage_parent_contexts, "context_id", cid, "parent_context_id")

    def get_children_contexts_by_context(self, context_id: int) -> list[Context]:
        """Return a context's children."""
        cid = _check_id(context_id, "context_id")
        return self._contexts_via(t.lineage_parent_contexts, "parent_context_id", cid, "context_id")

    @staticmethod
    def _events(conn: Connection, column: sa.Column[Any], ids: Sequence[int]) -> list[Event]:
        out = []
        ev = t.lineage_events.c
        for chunk in _chunks(list(ids)):
            for row in conn.execute(
                sa.select(t.lineage_events).where(column.in_(chunk)).order_by(ev.id)
            ):
                out.append(
                    Event(
                        type=EventType(row.type),
                        artifact_id=int(row.artifact_id),
                        execution_id=int(row.execution_id),
                        path=json.loads(row.path) if row.path else [],
                        milliseconds_since_epoch=int(row.milliseconds_since_epoch),
                    )
                )
        return out

    def get_events_by_artifact_ids(self, artifact_ids: Sequence[int]) -> list[Event]:
        """Return the events of these artifacts."""
        ids = _ids(artifact_ids, "artifact_ids")
        return cast(
            list[Event], self._read(lambda c: self._events(c, t.lineage_events.c.artifact_id, ids))
        )

    def get_events_by_execution_ids(self, execution_ids: Sequence[int]) -> list[Event]:
        """Return the events of these executions."""
        ids = _ids(execution_ids, "execution_ids")
        return cast(
            list[Event],
            self._read(lambda c: self._events(c, t.lineage_events.c.execution_id, ids)),
        )

    # ---------------------------------------------------------------- lineage

    def get_lineage_subgraph(
        self,
        start: NodeRef | Sequence[NodeRef],
        max_hops: int,
        direction: Direction | str = Direction.BOTH,
        *,
        include_contexts: bool = False,
    ) -> LineageGraph:
        """Return the nodes within ``max_hops`` events of ``start``, and the events among them.

        One recursive query (``WITH RECURSIVE`` over the events table, using its indexes on
        both edge directions) finds the nodes; a few more fetch them. One hop is one event:
        artifact to execution or execution to artifact.

        Args:
            start: An artifact or execution with an id, ``("artifact", id)`` /
                ``("execution", id)``, or a list of them.
            max_hops: How many events away at most (0 returns the start alone).
            direction: ``UPSTREAM`` (what it was made from), ``DOWNSTREAM`` (what was made
                from it) or ``BOTH`` (every event, either way: MLMD's bidirectional query).
            include_contexts: Also return the contexts of the nodes, with their links.

        Returns:
            The subgraph; ``graph.hops`` gives each node's distance.

        Raises:
            InvalidArgument: A bad start, ``max_hops`` or ``direction``.
            NotFound: The start node does not exist.
        """
        starts = self._start_keys(start)
        if isinstance(max_hops, bool) or not isinstance(max_hops, int) or max_hops < 0:
            raise InvalidArgument(f"max_hops must be an integer >= 0, got {max_hops!r}")
        way = _enum(Direction, direction, "direction")
        sql = sa.text(_walk_sql(way, len(starts)))
        params: dict[str, int] = {f"s{i}": key for i, key in enumerate(starts)}
        params["max_hops"] = max_hops

        def work(conn: Connection) -> LineageGraph:
            for key in starts:
                kind = "execution" if key % 2 else "artifact"
                table = _KINDS[kind].table
                if (
                    conn.execute(sa.select(table.c.id).where(table.c.id == key // 2)).first()
                    is None
                ):
                    raise NotFound(f"{kind} {key // 2} does not exist")
            hops = {int(node): int(hop) for node, hop in conn.execute(sql, params)}
            return self._graph(conn, hops, include_contexts=include_contexts)

        return cast(LineageGraph, self._read(work))

    @staticmethod
    def _start_keys(start: Any) -> list[int]:
        items = start if isinstance(start, list) else [start]
        if not items:
            raise InvalidArgument("start is empty: expected at least one node")
        keys = []
        for item in items:
            if isinstance(item, Artifact | Execution):
                kind = "artifact" if isinstance(item, Artifact) else "execution"
                keys.append(_node_key(kind, _check_id(item.id, f"start {kind} id")))
            elif (
                isinstance(item, tuple) and len(item) == 2 and item[0] in ("artifact", "execution")
            ):
                keys.append(_node_key(item[0], _check_id(item[1], f"start {item[0]} id")))
            else:
                raise InvalidArgument(
                    f"start {item!r}: expected an Artifact or Execution with an id, or "
                    "('artifact' | 'execution', id)"
                )
        return keys

    def _graph(
        self, conn: Connection, hops: dict[int, int], *, include_contexts: bool
    ) -> LineageGraph:
        artifact_ids = sorted(n // 2 for n in hops if n % 2 == 0)
        execution_ids = sorted(n // 2 for n in hops if n % 2 == 1)
        la, le = t.lineage_artifacts, t.lineage_executions
        artifact_rows: list[Any] = []
        execution_rows: list[Any] = []
        for chunk in _chunks(artifact_ids):
            artifact_rows += conn.execute(sa.select(la).where(la.c.id.in_(chunk))).all()
        for chunk in _chunks(execution_ids):
            execution_rows += conn.execute(sa.select(le).where(le.c.id.in_(chunk))).all()
        artifact_rows.sort(key=lambda r: r.id)
        execution_rows.sort(key=lambda r: r.id)
        wanted = set(artifact_ids)
        events = [
            e
            for e in self._events(conn, t.lineage_events.c.execution_id, execution_ids)
            if e.artifact_id in wanted
        ]
        graph = LineageGraph(
            artifacts=self._load(conn, _KINDS["artifact"], artifact_rows),
            executions=self._load(conn, _KINDS["execution"], execution_rows),
            events=events,
            hops={
                ("execution" if n % 2 else "artifact", n // 2): hop
                for n, hop in sorted(hops.items())
            },
        )
        if include_contexts:
            at, asn = t.lineage_attributions.c, t.lineage_associations.c
            for chunk in _chunks(artifact_ids):
                graph.attributions += [
                    Attribution(int(c), int(a))
                    for c, a in conn.execute(
                        sa.select(at.context_id, at.artifact_id).where(at.artifact_id.in_(chunk))
                    )
                ]
            for chunk in _chunks(execution_ids):
                graph.associations += [
                    Association(int(c), int(e))
                    for c, e in conn.execute(
                        sa.select(asn.context_id, asn.execution_id).where(
                            asn.execution_id.in_(chunk)
                        )
                    )
                ]
            context_ids = sorted(
                {a.context_id for a in graph.attributions}
                | {a.context_id for a in graph.associations}
            )
            lc = t.lineage_contexts
            rows: list[Any] = []
            for chunk in _chunks(context_ids):
                rows += conn.execute(sa.select(lc).where(lc.c.id.in_(chunk))).all()
            rows.sort(key=lambda r: r.id)
            graph.contexts = self._load(conn, _KINDS["context"], rows)
        return graph


def _walk_sql(direction: Direction, starts: int) -> str:
    seeds = " UNION ".join(f"SELECT CAST(:s{i} AS BIGINT), 0" for i in range(starts))
    if direction is Direction.UPSTREAM:
        step = (
            "SELECT e.src_node, w.hop + 1 FROM walk w JOIN lineage_events e "
            "ON e.dst_node = w.node WHERE w.hop < :max_hops"
        )
    elif direction is Direction.DOWNSTREAM:
        step = (
            "SELECT e.dst_node, w.hop + 1 FROM walk w JOIN lineage_events e "
            "ON e.src_node = w.node WHERE w.hop < :max_hops"
        )
    else:
        step = (
            "SELECT CASE WHEN e.src_node = w.node THEN e.dst_node ELSE e.src_node END, "
            "w.hop + 1 FROM walk w JOIN lineage_events e "
            "ON e.src_node = w.node OR e.dst_node = w.node WHERE w.hop < :max_hops"
        )
    return (
        f"WITH RECURSIVE walk(node, hop) AS ({seeds} UNION {step}) "
        "SELECT node, MIN(hop) FROM walk GROUP BY node"
    )


E = TypeVar("E", ArtifactState, ExecutionState, EventType, Direction)


def _enum(cls: type[E], value: object, what: str) -> E:
    try:
        return cls(value)
    except ValueError:
        raise InvalidArgument(
            f"{what} {value!r} is invalid: expected one of {', '.join(m.value for m in cls)}"
        ) from None
