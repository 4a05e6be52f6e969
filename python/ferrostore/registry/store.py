"""The SQL store behind tracking and the registry, on the shared metadata database.

One :class:`Store` per tracking URI: a :class:`~ferrostore.metadata.MetadataDB` and an
:class:`~ferrostore.registry.artifacts.ArtifactStore`. Every write is one transaction
(re-run on serialization failures), so a failed call changes nothing. Version numbers come
from the ``model_version:<name>`` counter inside the write transaction; stage transitions
lock the registered model's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write
transactions are serialized by ``BEGIN IMMEDIATE``).

The hot paths (runs, ``log_batch``, registration, stage transitions, version reads, model
resolution, both searches) run prebuilt SQL on the driver's own connection
(:meth:`~ferrostore.metadata.MetadataDB.run_on_driver`); a search statement is built with
SQLAlchemy once per filter, order and limit and compiled once. The rarer calls use
SQLAlchemy Core.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import json
import logging
import math
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement

from ferrostore.errors import AlreadyExists, InvalidArgument, NotFound
from ferrostore.metadata import MetadataDB
from ferrostore.metadata import tables as t
from ferrostore.metadata.db import SQL, DriverConnection
from ferrostore.registry._hooks import _emit, _prepare_recorders, _record, _RecordingFailed
from ferrostore.registry.artifacts import ArtifactStore, normalize_artifact_path
from ferrostore.registry.entities import (
    STAGES,
    Experiment,
    FileInfo,
    Metric,
    ModelEvaluation,
    ModelVersion,
    ModelVersionEvent,
    Param,
    RegisteredModel,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    StageAssignment,
)
from ferrostore.registry.filters import (
    Comparison,
    OrderKey,
    check_value_type,
    compare,
    parse_filter,
    parse_order_by,
)
from ferrostore.registry.uris import parse_model_uri

__all__ = ["DEFAULT_EXPERIMENT_ID", "RunTable", "Store", "current_user", "now_ms"]

T = TypeVar("T")

DEFAULT_EXPERIMENT_ID = "0"
_DEFAULT_EXPERIMENT_NAME = "Default"
_MAX_KEY = 250
_MAX_VALUE = 8000
_ALIAS = re.compile(r"[A-Za-z0-9_\-]{1,255}")
_RESERVED_ALIAS = re.compile(r"(?i:latest|v\d+)")
_STAGE_BY_LOWER = {s.lower(): s for s in STAGES}
_RUN_ATTRS_STR = {
    "run_id": "run_id",
    "run_name": "run_name",
    "status": "status",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
    "experiment_id": "experiment_id",
}
_RUN_ATTRS_NUM = {"start_time": "start_time", "end_time": "end_time"}
_MV_ATTRS_STR = {
    "name": "name",
    "run_id": "run_id",
    "source_path": "source",
    "source": "source",
    "current_stage": "current_stage",
    "user_id": "user_id",
    "description": "description",
}
_MV_ATTRS_NUM = {
    "version_number": "version",
    "version": "version",
    "creation_timestamp": "creation_time",
    "last_updated_timestamp": "last_updated_time",
}


_logger = logging.getLogger("ferrostore.registry")


def now_ms() -> int:
    """Return the current time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def current_user() -> str:
    """Return the OS user name (``"unknown"`` when it cannot be found).

    As ``getpass.getuser()``: the first of ``LOGNAME``, ``USER``, ``LNAME``, ``USERNAME``
    that is set, else the account of the process's user id (looked up once per id).
    """
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(variable)
        if user:
            return user
    return _account_name(os.getuid() if hasattr(os, "getuid") else -1)


@functools.lru_cache(maxsize=16)
def _account_name(uid: int) -> str:
    # getpass.getuser() reads the password database on every call without those variables.
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError, OSError):
        return "unknown"


def _to_ms(when: dt.datetime | int | float | str) -> int:
    if isinstance(when, bool):
        raise InvalidArgument(f"time {when!r} must be a datetime, ISO string or epoch ms")
    if isinstance(when, int | float):
        return int(when)
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when)
        except ValueError as err:
            raise InvalidArgument(f"time {when!r} is not an ISO 8601 date or datetime") from err
    if isinstance(when, dt.date) and not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time.max)
    if not isinstance(when, dt.datetime):
        raise InvalidArgument(f"time {when!r} must be a datetime, ISO string or epoch ms")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise InvalidArgument."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_version(version: object) -> int:
    """Return a model version number from an int or a string of digits."""
    if isinstance(version, bool):
        raise InvalidArgument(f"model version {version!r} must be a positive integer")
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version.strip())
    if not isinstance(version, int) or version < 1:
        raise InvalidArgument(f"model version {version!r} must be a positive integer")
    return version


def check_stage(stage: object) -> str:
    """Return the canonical spelling of a stage (case-insensitive), else raise."""
    if isinstance(stage, str) and stage.strip().lower() in _STAGE_BY_LOWER:
        return _STAGE_BY_LOWER[stage.strip().lower()]
    raise InvalidArgument(
        f"invalid stage {stage!r}; expected one of {', '.join(STAGES)} (case-insensitive)"
    )


def check_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid, unreserved alias name, else raise."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidArgument(
            f"invalid alias {alias!r}; expected 1-255 letters, digits, '_' or '-'"
        )
    if _RESERVED_ALIAS.fullmatch(alias):
        raise InvalidArgument(
            f"alias {alias!r} is reserved ('latest' and 'v<digits>' name versions); "
            "choose another name"
        )
    return alias


def _check_key(key: object, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        raise InvalidArgument(f"{what} key {key!r} must be a non-empty string of <= {_MAX_KEY}")
    return key


def _check_value(value: object, what: str, key: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > _MAX_VALUE:
        raise InvalidArgument(f"{what} {key!r}: value longer than {_MAX_VALUE} characters")
    return text


def _metric_value(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np

            if isinstance(value, np.generic) and np.issubdtype(value.dtype, np.number):
                return float(value)
        except ImportError:  # pragma: no cover - numpy is a dependency
            pass
        raise InvalidArgument(f"metric {key!r}: value {value!r} is not a number")
    return float(value)


def _dialect_insert(dialect: str, table: sa.Table) -> Any:
    """Return the dialect's INSERT of ``table`` (the one with ``on_conflict_*``)."""
    if dialect == "postgresql":
        return pg_dialect.insert(table)
    return sqlite_dialect.insert(table)


def _insert(conn: Connection, table: sa.Table) -> Any:
    return _dialect_insert(conn.dialect.name, table)


_ROWS_PER_INSERT = 100  # SQLite before 3.32 takes at most 999 parameters per statement
_METRIC_COLUMNS = ("run_id", "key", "value", "is_nan", "timestamp", "step")


def _columns(names: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in names)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


@functools.cache
def _insert_metrics(rows: int) -> SQL:
    """The INSERT of ``rows`` metric points in one multi-row VALUES statement."""
    group = f"({_marks(len(_METRIC_COLUMNS))})"
    return SQL(
        f"INSERT INTO run_metrics ({_columns(_METRIC_COLUMNS)}) VALUES " + ", ".join([group] * rows)
    )


def _insert_metric_rows(driver: DriverConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT metric points (tuples in the order of :data:`_METRIC_COLUMNS`).

    On SQLite rows go in multi-row VALUES statements of up to 100 rows, fewer statement
    steps than an executemany (about a third cheaper); psycopg pipelines an executemany.
    """
    if driver.dialect == "postgresql":
        driver.executemany(_insert_metrics(1), rows)
        return
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        driver.execute(_insert_metrics(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))


def _metric_from_row(value: float | None, is_nan: bool) -> float:
    return math.nan if is_nan or value is None else float(value)


_RUN_INFO_COLUMNS = (
    "run_id",
    "experiment_id",
    "run_name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "lifecycle_stage",
    "artifact_uri",
)
"""The ``runs`` columns of a :class:`RunInfo`, in the order of its fields."""


class RunTable(NamedTuple):
    """Runs as columns, the shape ``search_runs`` builds its DataFrame from.

    ``rows`` hold the ``columns`` of ``runs`` of each run (by default the
    :data:`_RUN_INFO_COLUMNS`), in search order; ``metrics``, ``params`` and ``tags`` map
    each key to ``{position in rows: value}`` for the runs that have it.
    """

    rows: list[tuple[Any, ...]]
    metrics: dict[str, dict[int, float]]
    params: dict[str, dict[int, str]]
    tags: dict[str, dict[int, str]]
    columns: tuple[str, ...] = _RUN_INFO_COLUMNS

    def runs(self) -> list[Run]:
        """Return the table as :class:`Run` objects, in order.

        Raises:
            ValueError: The rows do not hold every :data:`_RUN_INFO_COLUMNS`.
        """
        if self.columns != _RUN_INFO_COLUMNS:
            raise ValueError(f"Run objects need the columns {_RUN_INFO_COLUMNS}")
        per_run: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
            ({}, {}, {}) for _ in self.rows
        ]
        kinds: tuple[dict[str, dict[int, Any]], ...] = (self.metrics, self.params, self.tags)
        for slot, columns in enumerate(kinds):
            for key, by_row in columns.items():
                for row, value in by_row.items():
                    per_run[row][slot][key] = value
        return [
            Run(info=RunInfo(*row), data=RunData(*data))
            for row, data in zip(self.rows, per_run, strict=True)
        ]


def _ids_sql(select: str, column: str, pg_type: str) -> SQL:
    """Return ``<select> <column> IN (ids)`` with the ids bound as one parameter.

    A plain ``IN`` renders one parameter per id, so its text (and the prepared statement)
    changes with every count; this one stays one statement. Bind :func:`_ids_param`.
    """
    return SQL(
        f"{select} {column} IN (SELECT value FROM json_each(?))",
        postgresql=f"{SQL(select).postgresql} {column} = ANY(CAST(%s AS {pg_type}[]))",
    )


def _ids_param(ids: Sequence[Any], dialect: str) -> Any:
    return list(ids) if dialect == "postgresql" else json.dumps(list(ids))


# The runs of a search, bound as one list: ``j(pos, run_id)``, pos the index in the list (an
# int, cheaper to read and use than the run id). SQLite probes the ids sorted (neighbouring
# pages) and walks the list first (``CROSS JOIN`` keeps that order): one primary-key search per
# run and table.
_RUN_LIST = SQL(
    "WITH j(pos, run_id) AS (SELECT key, value FROM json_each(?) ORDER BY value) ",
    postgresql="WITH j(run_id, pos) AS (SELECT run_id, pos - 1 FROM "
    "unnest(CAST(%s AS TEXT[])) WITH ORDINALITY AS u(run_id, pos)) ",
)


def _with_run_list(select: str) -> SQL:
    return SQL(
        _RUN_LIST.sqlite + select.format(join="CROSS JOIN", agg="json_group_array"),
        postgresql=_RUN_LIST.postgresql + select.format(join="JOIN", agg="array_agg"),
    )


# Latest metrics one row each (NaN read as NULL); params and tags one row per key, their
# positions and values aggregated (JSON arrays on SQLite, arrays on PostgreSQL), so the rows
# reach Python as a few lists instead of a tuple per value.
_RUNS_METRICS = _with_run_list(
    'SELECT j.pos, d."key", CASE WHEN d.is_nan THEN NULL ELSE d.value END '
    "FROM j {join} run_latest_metrics AS d ON d.run_id = j.run_id"
)
_RUNS_PARAMS_TAGS = _with_run_list(
    " UNION ALL ".join(
        f'SELECT {kind}, d."key", {{agg}}(j.pos), {{agg}}(d.value) '
        f'FROM j {{join}} {table} AS d ON d.run_id = j.run_id GROUP BY d."key"'
        for kind, table in ((1, "run_params"), (2, "run_tags"))
    )
)
_NAN = math.nan


def _run_table(
    conn: Connection | DriverConnection,
    rows: Sequence[Any],
    columns: tuple[str, ...] = _RUN_INFO_COLUMNS,
) -> RunTable:
    """Return the runs ``rows`` (their ``columns``, the run id first) with their logged data."""
    metrics: dict[str, dict[int, float]] = {}
    data: tuple[dict[str, dict[int, str]], ...] = ({}, {}, {})
    if rows:
        driver = DriverConnection.of(conn)
        ids = (_ids_param([row[0] for row in rows], driver.dialect),)
        for pos, key, value in driver.all(_RUNS_METRICS, ids):
            by_row = metrics.get(key)
            if by_row is None:
                by_row = metrics[key] = {}
            by_row[pos] = _NAN if value is None else float(value)
        decode = json.loads if driver.dialect == "sqlite" else None
        for kind, key, positions, values in driver.all(_RUNS_PARAMS_TAGS, ids):
            if decode is not None:
                positions, values = decode(positions), decode(values)
            data[kind][key] = dict(zip(positions, values, strict=True))
    return RunTable([tuple(row) for row in rows], metrics, data[1], data[2], columns)


_MV_COLUMNS = (
    "name",
    "version",
    "creation_time",
    "last_updated_time",
    "description",
    "user_id",
    "current_stage",
    "source",
    "run_id",
    "run_link",
    "status",
)


class _VersionRow(NamedTuple):
    """A ``model_versions`` row (its columns in table order)."""

    name: str
    version: int
    creation_time: int
    last_updated_time: int
    description: str | None
    user_id: str
    current_stage: str
    source: str
    run_id: str | None
    run_link: str | None
    status: str


_EXPERIMENT_BY = {
    column: sa.select(
        t.experiments,
        t.experiment_tags.c.key.label("tag_key"),
        t.experiment_tags.c.value.label("tag_value"),
    )
    .select_from(t.experiments.outerjoin(t.experiment_tags))
    .where(t.experiments.c[column] == sa.bindparam("value"))
    for column in ("experiment_id", "name")
}

# Statements of the hot paths, run on the driver's connection (see MetadataDB.run_on_driver).
_RUN = SQL(f"SELECT {', '.join(_RUN_INFO_COLUMNS)} FROM runs WHERE run_id = ?")
_RUN_EXISTS = SQL("SELECT run_id FROM runs WHERE run_id = ?")
_RUN_STAGE = SQL("SELECT lifecycle_stage FROM runs WHERE run_id = ?")
_EXPERIMENT_STAGE = SQL("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?")
_INSERT_RUN = SQL(
    "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, start_time, end_time, "
    f"lifecycle_stage, artifact_uri, parent_run_id) VALUES ({_marks(10)})"
)
_INSERT_RUN_TAGS = SQL(f'INSERT INTO run_tags (run_id, "key", value) VALUES ({_marks(3)})')
_UPSERT_RUN_TAGS = SQL(
    f'INSERT INTO run_tags (run_id, "key", value) VALUES ({_marks(3)}) '
    'ON CONFLICT (run_id, "key") DO UPDATE SET value = excluded.value'
)
_INSERT_PARAMS = SQL(
    f'INSERT INTO run_params (run_id, "key", value) VALUES ({_marks(3)}) ON CONFLICT DO NOTHING'
)
_RUN_PARAMS = SQL('SELECT "key", value FROM run_params WHERE run_id = ?')
_SET_RUN_NAME = SQL("UPDATE runs SET run_name = ? WHERE run_id = ?")
_UPSERT_LATEST = SQL(
    f"INSERT INTO run_latest_metrics ({_columns(_METRIC_COLUMNS)}) VALUES ({_marks(6)}) "
    'ON CONFLICT (run_id, "key") DO UPDATE SET value = excluded.value, '
    'is_nan = excluded.is_nan, "timestamp" = excluded."timestamp", step = excluded.step '
    "WHERE excluded.step > run_latest_metrics.step OR (excluded.step = run_latest_metrics.step "
    'AND excluded."timestamp" >= run_latest_metrics."timestamp")'
)


@functools.cache
def _update_run(columns: tuple[str, ...]) -> SQL:
    """The UPDATE of some ``runs`` columns (then the run id) of one run."""
    return SQL(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in columns)} WHERE run_id = ?")


_MODEL = SQL("SELECT name FROM registered_models WHERE name = ?")
_LOCK_MODEL = SQL(
    "SELECT name FROM registered_models WHERE name = ?",
    postgresql="SELECT name FROM registered_models WHERE name = %s FOR UPDATE",
)
_ENSURE_MODEL = SQL(
    "INSERT INTO registered_models (name, creation_time, last_updated_time) "
    f"VALUES ({_marks(3)}) ON CONFLICT DO NOTHING"
)
_TOUCH_MODEL = SQL("UPDATE registered_models SET last_updated_time = ? WHERE name = ?")
_VERSION = SQL(
    f"SELECT {', '.join(_MV_COLUMNS)} FROM model_versions WHERE name = ? AND version = ?"
)
_INSERT_VERSION = SQL(
    f"INSERT INTO model_versions ({', '.join(_MV_COLUMNS)}) VALUES ({_marks(len(_MV_COLUMNS))})"
)
_INSERT_VERSION_TAGS = SQL(
    f'INSERT INTO model_version_tags (name, version, "key", value) VALUES ({_marks(4)})'
)
_SET_STAGE = SQL(
    "UPDATE model_versions SET current_stage = ?, last_updated_time = ? "
    "WHERE name = ? AND version = ?"
)
_OTHERS_IN_STAGE = SQL(
    "SELECT version, current_stage FROM model_versions "
    "WHERE name = ? AND current_stage = ? AND version <> ?"
)
_INSERT_EVENT = SQL(
    "INSERT INTO model_registry_events "
    f'(name, version, kind, from_stage, to_stage, alias, actor, "timestamp") VALUES ({_marks(8)})'
)
_VERSION_TAGS = SQL('SELECT "key", value FROM model_version_tags WHERE name = ? AND version = ?')
_VERSIONS_TAGS = _ids_sql(
    'SELECT version, "key", value FROM model_version_tags WHERE name = ? AND',
    "version",
    "BIGINT",
)
_MODEL_ALIASES = SQL(
    "SELECT alias, version FROM registered_model_aliases WHERE name = ? ORDER BY alias"
)
_ALIAS_VERSION = SQL("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?")
_NEWEST_VERSION = SQL(
    f"SELECT {', '.join(_MV_COLUMNS)} FROM model_versions WHERE name = ? "
    "ORDER BY version DESC LIMIT 1"
)
_NEWEST_IN_STAGE = SQL(
    f"SELECT {', '.join(_MV_COLUMNS)} FROM model_versions WHERE name = ? AND current_stage = ? "
    "ORDER BY version DESC LIMIT 1"
)
_MODEL_ARTIFACT = SQL("SELECT path FROM run_artifacts WHERE run_id = ? AND path = ?")
_ARTIFACTS = SQL("SELECT path, sha256, size FROM run_artifacts WHERE run_id = ?")
_ARTIFACTS_UNDER = SQL(
    "SELECT path, sha256, size FROM run_artifacts "
    "WHERE run_id = ? AND (path = ? OR substr(path, 1, CAST(? AS INTEGER)) = ?)"
)


def _manifest(
    conn: Connection | DriverConnection, run_id: str, prefix: str
) -> dict[str, tuple[str, int]]:
    """Return ``{path: (sha256, size)}`` of a run's artifacts under a normalized ``prefix``."""
    driver = DriverConnection.of(conn)
    if not prefix:
        rows = driver.all(_ARTIFACTS, (run_id,))
    else:
        folder = prefix + "/"
        rows = driver.all(_ARTIFACTS_UNDER, (run_id, prefix, len(folder), folder))
    return {path: (digest, size) for path, digest, size in rows}


@functools.lru_cache(maxsize=256)
def _compiled_query(query: sa.Select[Any], dialect: str) -> tuple[SQL, tuple[Any, ...]]:
    """Return a built query (its values bound) as driver SQL and its parameters, compiled once.

    Only for the queries the ``lru_cache``'d builders return: their values are part of the
    statement, so the same object always compiles to the same text and parameters.
    """
    if dialect == "postgresql":
        target: Any = pg_psycopg.dialect(paramstyle="format")
    else:
        target = sqlite_dialect.dialect()
    compiled = query.compile(dialect=target, compile_kwargs={"render_postcompile": True})
    values = compiled.params
    names = compiled.positiontup or ()
    return SQL(compiled.string, postgresql=compiled.string), tuple(values[n] for n in names)


def _check_step(key: str, step: object, timestamp: object) -> None:
    if isinstance(step, bool) or not isinstance(step, int):
        raise InvalidArgument(f"metric {key!r}: step {step!r} must be an integer")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise InvalidArgument(f"metric {key!r}: timestamp {timestamp!r} must be ms")


class _Events:
    """The registry events of one change (see :meth:`Store._change`)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.made: list[tuple[str, dict[str, Any]]] = []
        self.recording = True

    def record(self, conn: Connection | DriverConnection, event_name: str, **payload: Any) -> None:
        """Hand an event to the recorders in ``conn``'s transaction; subscribers follow."""
        payload["store"] = self._store
        if self.recording:
            _record(DriverConnection.of(conn), event_name, **payload)
        self.made.append((event_name, payload))


class Store:
    """Tracking and registry operations on one metadata database and artifact store.

    Args:
        db: The metadata database.
        artifacts: The artifact store.
        uri: The tracking URI, for messages.
    """

    def __init__(self, db: MetadataDB, artifacts: ArtifactStore, uri: str) -> None:
        self.db = db
        self.artifacts = artifacts
        self.uri = uri
        self._default_ready = False
        self._recording_ready = False

    # ----------------------------------------------------------------- plumbing

    def _write(self, fn: Callable[[Connection], T]) -> T:
        return self.db.run_in_transaction(fn)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        return self.db.run_in_transaction(fn, readonly=True)

    def _write_on_driver(self, fn: Callable[[DriverConnection], T]) -> T:
        return self.db.run_on_driver(fn)

    def _read_on_driver(self, fn: Callable[[DriverConnection], T]) -> T:
        return self.db.run_on_driver(fn, readonly=True)

    def _change(self, fn: Callable[[Any, _Events], T], *, on_driver: bool = True) -> T:
        """Run a change that reports registry events, in one transaction.

        ``fn(conn, events)`` calls ``events.record`` for each event: the recorders
        (lineage) write in this transaction; subscribers hear of the events after the commit.
        ``conn`` is a :class:`DriverConnection`, or a SQLAlchemy connection when
        ``on_driver`` is false.
        """
        if not self._recording_ready:
            self._recording_ready = _prepare_recorders(self)
        events = _Events(self)

        def attempt(conn: Any) -> T:
            events.made.clear()  # a retried transaction records its events again
            return fn(conn, events)

        def run() -> T:
            return self.db.run_on_driver(attempt) if on_driver else self._write(attempt)

        try:
            result = run()
        except _RecordingFailed as failed:
            _logger.error("%s; the change is made without it", failed, exc_info=failed.__cause__)
            events.recording = False
            result = run()
        for event_name, payload in events.made:
            _emit(event_name, **payload)
        return result

    def _ensure_default_experiment(self) -> None:
        if self._default_ready:
            return

        def work(conn: Connection) -> None:
            now = now_ms()
            stmt = _insert(conn, t.experiments).values(
                experiment_id=DEFAULT_EXPERIMENT_ID,
                name=_DEFAULT_EXPERIMENT_NAME,
                artifact_location=f"{self.artifacts.root}/experiments/0",
                lifecycle_stage="active",
                creation_time=now,
                last_update_time=now,
            )
            conn.execute(stmt.on_conflict_do_nothing())

        self._write(work)
        self._default_ready = True

    # -------------------------------------------------------------- experiments

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> str:
        """Create an experiment; return its id. Raises AlreadyExists for a taken name."""
        check_name(name, "experiment name")
        self._ensure_default_experiment()
        tag_rows = {
            _check_key(k, "experiment tag"): _check_value(v, "tag", k)
            for k, v in (tags or {}).items()
        }

        def work(conn: Connection) -> str:
            taken = conn.execute(
                sa.select(t.experiments.c.experiment_id).where(t.experiments.c.name == name)
            ).first()
            if taken is not None:
                raise AlreadyExists(f"experiment {name!r} exists already (id {taken[0]})")
            exp_id = str(self.db.next_value(conn, "experiment_id"))
            now = now_ms()
            conn.execute(
                sa.insert(t.experiments).values(
                    experiment_id=exp_id,
                    name=name,
                    artifact_location=artifact_location
                    or f"{self.artifacts.root}/experiments/{exp_id}",
                    lifecycle_stage="active",
                    creation_time=now,
                    last_update_time=now,
                )
            )
            if tag_rows:
                conn.execute(
                    sa.insert(t.experiment_tags),
                    [{"experiment_id": exp_id, "key": k, "value": v} for k, v in tag_rows.items()],
                )
            return exp_id

        return self._write(work)

    def _experiment(self, conn: Connection, by: str, value: str) -> Experiment | None:
        """Return the experiment whose column ``by`` (experiment_id or name) is ``value``."""
        rows = conn.execute(_EXPERIMENT_BY[by], {"value": value}).all()
        if not rows:
            return None
        row = rows[0]
        return Experiment(
            experiment_id=row.experiment_id,
            name=row.name,
            artifact_location=row.artifact_location,
            lifecycle_stage=row.lifecycle_stage,
            tags={r.tag_key: r.tag_value for r in rows if r.tag_key is not None},
            creation_time=row.creation_time,
            last_update_time=row.last_update_time,
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return the experiment with this id. Raises NotFound."""
        self._ensure_default_experiment()
        exp_id = str(experiment_id)
        exp = self._read(lambda conn: self._experiment(conn, "experiment_id", exp_id))
        if exp is None:
            raise NotFound(f"experiment id {exp_id!r} does not exist")
        return exp

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return the experiment named ``name``, or None."""
        check_name(name, "experiment name")
        self._ensure_default_experiment()
        return self._read(lambda conn: self._experiment(conn, "name", name))

    def search_experiments(self) -> list[Experiment]:
        """Return every active experiment, by id."""
        self._ensure_default_experiment()

        def work(conn: Connection) -> list[Experiment]:
            ids = conn.execute(
                sa.select(t.experiments.c.experiment_id).where(
                    t.experiments.c.lifecycle_stage == "active"
                )
            ).scalars()
            out = [self._experiment(conn, "experiment_id", i) for i in ids]
            return sorted((e for e in out if e), key=lambda e: int(e.experiment_id))

        return self._read(work)

    # --------------------------------------------------------------------- runs

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        tags: Mapping[str, Any] | None,
        parent_run_id: str | None,
        user_id: str | None = None,
        start_time: int | None = None,
    ) -> Run:
        """Create a RUNNING run in an experiment. Raises NotFound for an unknown experiment."""
        self._ensure_default_experiment()
        exp_id = str(experiment_id)
        user = user_id or current_user()
        name = run_name if run_name else _random_run_name()
        check_name(name, "run_name")
        tag_rows = {
            _check_key(k, "run tag"): _check_value(v, "tag", k) for k, v in (tags or {}).items()
        }
        tag_rows.setdefault("mlflow.user", user)
        tag_rows["mlflow.runName"] = name
        if parent_run_id:
            tag_rows["mlflow.parentRunId"] = parent_run_id
        run_id = uuid.uuid4().hex
        start = start_time if start_time is not None else now_ms()

        def work(driver: DriverConnection, events: _Events) -> None:
            stage = driver.first(_EXPERIMENT_STAGE, (exp_id,))
            if stage is None:
                raise NotFound(f"experiment id {exp_id!r} does not exist")
            if stage[0] != "active":
                raise InvalidArgument(f"experiment id {exp_id!r} is deleted; cannot add runs")
            driver.execute(
                _INSERT_RUN,
                (
                    run_id,
                    exp_id,
                    name,
                    user,
                    RunStatus.RUNNING,
                    start,
                    None,
                    "active",
                    f"runs:/{run_id}",
                    parent_run_id,
                ),
            )
            driver.executemany(_INSERT_RUN_TAGS, [(run_id, k, v) for k, v in tag_rows.items()])
            events.record(
                driver,
                "run_started",
                run_id=run_id,
                experiment_id=exp_id,
                run_name=name,
                user=user,
            )

        self._change(work)
        # What was just written: a new run has no metrics or params yet.
        info = RunInfo(
            run_id, exp_id, name, user, RunStatus.RUNNING, start, None, "active", f"runs:/{run_id}"
        )
        return Run(info=info, data=RunData(metrics={}, params={}, tags=dict(tag_rows)))

    @staticmethod
    def _check_run_id(run_id: object) -> str:
        if not isinstance(run_id, str) or not run_id:
            raise InvalidArgument(f"run_id must be a non-empty string, got {run_id!r}")
        return run_id

    def _require_run(self, conn: Connection | DriverConnection, run_id: str) -> tuple[Any, ...]:
        """Return the run's :data:`_RUN_INFO_COLUMNS`. Raises NotFound."""
        row = DriverConnection.of(conn).first(_RUN, (self._check_run_id(run_id),))
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist")
        return row

    def get_run(self, run_id: str) -> Run:
        """Return a run with its latest metrics, params and tags. Raises NotFound."""

        def work(driver: DriverConnection) -> Run:
            return _run_table(driver, [self._require_run(driver, run_id)]).runs()[0]

        return self._read_on_driver(work)

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> None:
        """Set a run's status (and end time) or name. Raises NotFound / InvalidArgument."""
        if status is not None and status not in RunStatus.ALL:
            raise InvalidArgument(
                f"invalid run status {status!r}; expected one of {', '.join(RunStatus.ALL)}"
            )

        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
            values["end_time"] = None
        if run_name is not None:
            values["run_name"] = check_name(run_name, "run_name")

        def work(driver: DriverConnection, events: _Events) -> None:
            if status is not None and RunStatus.is_terminated(status):
                values["end_time"] = end_time or now_ms()
            if not values:
                self._require_run(driver, run_id)
                return
            # The UPDATE doubles as the existence check: no row matched, no run.
            rid = self._check_run_id(run_id)
            update = _update_run(tuple(values))
            if driver.rowcount(update, (*values.values(), rid)) == 0:
                raise NotFound(f"run {run_id!r} does not exist")
            if run_name is not None:
                driver.execute(_UPSERT_RUN_TAGS, (run_id, "mlflow.runName", run_name))
            if status is not None and RunStatus.is_terminated(status):
                events.record(driver, "run_ended", run_id=run_id, status=status)

        self._change(work)

    def delete_run(self, run_id: str) -> None:
        """Mark a run deleted (hidden from search). Raises NotFound."""

        def work(conn: Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(
                sa.update(t.runs).where(t.runs.c.run_id == run_id).values(lifecycle_stage="deleted")
            )

        self._write(work)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Log metrics, params and tags to a run in one transaction.

        Params are write-once: the same value again is accepted, another value raises
        AlreadyExists and nothing of the batch is written. NaN metric values are stored as
        NaN. The latest value of each metric (greatest step, then timestamp) is kept.
        """
        param_rows: dict[str, str] = {}
        for p in params:
            key = _check_key(p.key, "param")
            value = _check_value(p.value, "param", key)
            if key in param_rows and param_rows[key] != value:
                raise AlreadyExists(
                    f"param {key!r} given twice with different values {param_rows[key]!r} and "
                    f"{value!r}; params are write-once"
                )
            param_rows[key] = value
        tag_rows = {_check_key(x.key, "tag"): _check_value(x.value, "tag", x.key) for x in tags}
        metric_rows: list[tuple[Any, ...]] = []
        append = metric_rows.append
        # key -> its latest row (greatest step, then timestamp); a key not in it is checked.
        latest: dict[str, tuple[Any, ...]] = {}
        row: tuple[Any, ...]
        for m in metrics:
            key, value, step, timestamp = m.key, m.value, m.step, m.timestamp
            best = latest.get(key)
            if best is None:
                _check_key(key, "metric")
            if type(value) is not float:  # floats, the common case, need no conversion
                value = _metric_value(key, value)
            if type(step) is not int or type(timestamp) is not int:
                _check_step(key, step, timestamp)
            if value == value:
                row = (run_id, key, value, False, timestamp, step)
            else:
                row = (run_id, key, None, True, timestamp, step)
            append(row)
            if best is None or step > best[5] or (step == best[5] and timestamp >= best[4]):
                latest[key] = row

        def work(driver: DriverConnection) -> None:
            stage = driver.scalar(_RUN_STAGE, (self._check_run_id(run_id),))
            if stage is None:
                raise NotFound(f"run {run_id!r} does not exist")
            if stage != "active":
                raise InvalidArgument(f"run {run_id!r} is deleted; cannot log to it")
            if param_rows:
                driver.executemany(_INSERT_PARAMS, [(run_id, k, v) for k, v in param_rows.items()])
                stored = dict(driver.all(_RUN_PARAMS, (run_id,)))
                for key, value in param_rows.items():
                    if stored.get(key) != value:
                        raise AlreadyExists(
                            f"param {key!r} of run {run_id} is {stored.get(key)!r} already; "
                            f"params are write-once, cannot set it to {value!r}"
                        )
            if tag_rows:
                driver.executemany(_UPSERT_RUN_TAGS, [(run_id, k, v) for k, v in tag_rows.items()])
                if "mlflow.runName" in tag_rows:
                    driver.execute(_SET_RUN_NAME, (tag_rows["mlflow.runName"], run_id))
            if metric_rows:
                _insert_metric_rows(driver, metric_rows)
                driver.executemany(_UPSERT_LATEST, list(latest.values()))

        self._write_on_driver(work)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Return every point of a metric, by step then timestamp. Raises NotFound."""
        _check_key(key, "metric")

        def work(conn: Connection) -> list[Metric]:
            self._require_run(conn, run_id)
            m = t.run_metrics.c
            rows = conn.execute(
                sa.select(m.key, m.value, m.is_nan, m.timestamp, m.step)
                .where(m.run_id == run_id, m.key == key)
                .order_by(m.step, m.timestamp, m.id)
            ).all()
            return [
                Metric(r.key, _metric_from_row(r.value, r.is_nan), r.timestamp, r.step)
                for r in rows
            ]

        return self._read(work)

    def search_run_table(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str | None,
        order_by: Sequence[str] | None,
        max_results: int,
        include_deleted: bool = False,
        columns: tuple[str, ...] = _RUN_INFO_COLUMNS,
    ) -> RunTable:
        """Return the runs matching a filter, in order, as columns; filter and order run in SQL.

        ``columns`` are the ``runs`` columns read for each run (``run_id`` first); a
        DataFrame needs fewer than :class:`Run` objects do.

        Raises:
            InvalidArgument: A malformed filter or order_by, or a bad ``max_results``.
        """
        ids = None if experiment_ids is None else tuple(str(e) for e in experiment_ids)
        order = None if order_by is None else tuple(order_by)
        args = (ids, filter_string, order, max_results, include_deleted, columns, self.db.dialect)
        query = _cached(_run_query, *args)
        sql, params = _compiled_query(query, self.db.dialect)
        self._ensure_default_experiment()
        return self._read_on_driver(
            lambda driver: _run_table(driver, driver.all(sql, params), columns)
        )

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str | None,
        order_by: Sequence[str] | None,
        max_results: int,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Return the runs matching a filter, in order (see :meth:`search_run_table`)."""
        table = self.search_run_table(
            experiment_ids, filter_string, order_by, max_results, include_deleted
        )
        return table.runs()

    # ---------------------------------------------------------------- artifacts

    def log_artifact_files(self, run_id: str, files: Sequence[tuple[str, Path]]) -> None:
        """Store local files and record them under artifact paths of a run."""
        for path, _ in files:
            normalize_artifact_path(path, allow_empty=False)
        self._read(lambda conn: self._require_run(conn, run_id))
        rows = []
        for path, local in files:
            digest, size = self.artifacts.put_file(local)
            rows.append({"run_id": run_id, "path": path, "sha256": digest, "size": size})
        if not rows:
            return

        def work(conn: Connection) -> None:
            self._require_run(conn, run_id)
            stmt = _insert(conn, t.run_artifacts).values(rows)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_id", "path"],
                    set_={"sha256": stmt.excluded.sha256, "size": stmt.excluded.size},
                )
            )

        self._write(work)

    def artifact_manifest(self, run_id: str, prefix: str = "") -> dict[str, tuple[str, int]]:
        """Return ``{path: (sha256, size)}`` of a run's artifacts under ``prefix``."""
        prefix = normalize_artifact_path(prefix)

        def work(conn: Connection) -> dict[str, tuple[str, int]]:
            self._require_run(conn, run_id)
            return _manifest(conn, run_id, prefix)

        return self._read(work)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """List the files and folders directly under ``path`` in a run's artifacts."""
        base = normalize_artifact_path(path)
        manifest = self.artifact_manifest(run_id, base)
        entries: dict[str, FileInfo] = {}
        for full, (_, size) in manifest.items():
            rest = full[len(base) + 1 :] if base else full
            if not rest:
                entries[full] = FileInfo(full, False, size)
                continue
            head, sep, _ = rest.partition("/")
            child = f"{base}/{head}" if base else head
            entries[child] = FileInfo(child, True, None) if sep else FileInfo(child, False, size)
        return sorted(entries.values(), key=lambda f: f.path)

    def download_artifacts(self, run_id: str, path: str, dst: Path) -> Path:
        """Write a run's artifact file or folder ``path`` under ``dst``; return its local path."""
        base = normalize_artifact_path(path)
        manifest = self.artifact_manifest(run_id, base)
        if not manifest:
            raise NotFound(f"run {run_id} has no artifact {path!r}")
        for full, (digest, _) in manifest.items():
            target = dst / full
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.artifacts.read_bytes(digest))
        return dst / base if base else dst

    # ----------------------------------------------------------------- registry

    def _lock_model(self, conn: Connection | DriverConnection, name: str) -> None:
        if DriverConnection.of(conn).first(_LOCK_MODEL, (name,)) is None:
            raise NotFound(f"registered model {name!r} does not exist")

    def _require_model(self, conn: Connection | DriverConnection, name: str) -> None:
        if DriverConnection.of(conn).first(_MODEL, (name,)) is None:
            raise NotFound(f"registered model {name!r} does not exist")

    def _require_version(
        self, conn: Connection | DriverConnection, name: str, version: int
    ) -> _VersionRow:
        row = DriverConnection.of(conn).first(_VERSION, (name, version))
        if row is None:
            self._require_model(conn, name)
            raise NotFound(f"registered model {name!r} has no version {version}")
        return _VersionRow._make(row)

    def _event(
        self,
        conn: Connection | DriverConnection,
        name: str,
        version: int | None,
        kind: str,
        actor: str,
        *,
        from_stage: str | None = None,
        to_stage: str | None = None,
        alias: str | None = None,
        timestamp: int | None = None,
    ) -> None:
        DriverConnection.of(conn).execute(
            _INSERT_EVENT,
            (name, version, kind, from_stage, to_stage, alias, actor, timestamp or now_ms()),
        )

    def _touch_model(self, conn: Connection | DriverConnection, name: str, now: int) -> None:
        DriverConnection.of(conn).execute(_TOUCH_MODEL, (now, name))

    def _lock_and_touch_model(
        self, conn: Connection | DriverConnection, name: str, now: int
    ) -> None:
        """Set a model's update time, which locks its row until commit (as ``_lock_model``)."""
        if DriverConnection.of(conn).rowcount(_TOUCH_MODEL, (now, name)) == 0:
            raise NotFound(f"registered model {name!r} does not exist")

    def create_registered_model(
        self, name: str, tags: Mapping[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        """Create a registered model. Raises AlreadyExists when the name is taken."""
        check_name(name, "registered model name")
        tag_rows = {
            _check_key(k, "model tag"): _check_value(v, "tag", k) for k, v in (tags or {}).items()
        }

        def work(conn: Connection) -> None:
            now = now_ms()
            rm = t.registered_models.c
            if conn.execute(sa.select(rm.name).where(rm.name == name)).first() is not None:
                raise AlreadyExists(f"registered model {name!r} exists already")
            conn.execute(
                sa.insert(t.registered_models).values(
                    name=name, creation_time=now, last_updated_time=now, description=description
                )
            )
            if tag_rows:
                conn.execute(
                    sa.insert(t.registered_model_tags),
                    [{"name": name, "key": k, "value": v} for k, v in tag_rows.items()],
                )

        self._write(work)
        return self.get_registered_model(name)

    def _model_versions(
        self, conn: Connection | DriverConnection, rows: Sequence[Sequence[Any]]
    ) -> list[ModelVersion]:
        """Return ``model_versions`` rows (their columns in table order) as ModelVersions."""
        if not rows:
            return []
        driver = DriverConnection.of(conn)
        tags: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
        aliases: dict[tuple[str, int], list[str]] = defaultdict(list)
        by_name: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            by_name[row[0]].append(int(row[1]))
        for name, numbers in by_name.items():
            if len(numbers) == 1:
                found = [
                    (numbers[0], k, v) for k, v in driver.all(_VERSION_TAGS, (name, numbers[0]))
                ]
            else:
                found = driver.all(_VERSIONS_TAGS, (name, _ids_param(numbers, driver.dialect)))
            for version, key, value in found:
                tags[(name, int(version))][key] = value
            for alias, version in driver.all(_MODEL_ALIASES, (name,)):
                aliases[(name, int(version))].append(alias)
        out = []
        for row in rows:
            mv = _VersionRow._make(row)
            key = (mv.name, int(mv.version))
            out.append(
                ModelVersion(
                    name=mv.name,
                    version=key[1],
                    creation_timestamp=mv.creation_time,
                    last_updated_timestamp=mv.last_updated_time,
                    description=mv.description,
                    user_id=mv.user_id,
                    current_stage=mv.current_stage,
                    source=mv.source,
                    run_id=mv.run_id,
                    status=mv.status,
                    run_link=mv.run_link,
                    tags=tags[key],
                    aliases=aliases[key],
                )
            )
        return out

    def _latest_versions(
        self, conn: Connection, name: str, stages: Sequence[str] | None
    ) -> list[ModelVersion]:
        mv = t.model_versions.c
        newest = (
            sa.select(mv.current_stage, sa.func.max(mv.version).label("version"))
            .where(mv.name == name)
            .group_by(mv.current_stage)
            .subquery()
        )
        query = (
            sa.select(t.model_versions)
            .join(
                newest,
                sa.and_(mv.version == newest.c.version, mv.current_stage == newest.c.current_stage),
            )
            .where(mv.name == name)
            .order_by(mv.version)
        )
        if stages is not None:
            query = query.where(mv.current_stage.in_(list(stages)))
        return self._model_versions(conn, conn.execute(query).all())

    def _registered_models(self, conn: Connection, rows: Sequence[Any]) -> list[RegisteredModel]:
        out = []
        for row in rows:
            tags = dict(
                conn.execute(
                    sa.select(t.registered_model_tags.c.key, t.registered_model_tags.c.value).where(
                        t.registered_model_tags.c.name == row.name
                    )
                ).all()
            )
            al = t.registered_model_aliases.c
            aliases = {
                a: int(v)
                for a, v in conn.execute(
                    sa.select(al.alias, al.version).where(al.name == row.name).order_by(al.alias)
                )
            }
            out.append(
                RegisteredModel(
                    name=row.name,
                    creation_timestamp=row.creation_time,
                    last_updated_timestamp=row.last_updated_time,
                    description=row.description,
                    tags=tags,
                    aliases=aliases,
                    latest_versions=self._latest_versions(conn, row.name, None),
                )
            )
        return out

    def get_registered_model(self, name: str) -> RegisteredModel:
        """Return a registered model. Raises NotFound."""
        check_name(name, "registered model name")

        def work(conn: Connection) -> RegisteredModel:
            row = conn.execute(
                sa.select(t.registered_models).where(t.registered_models.c.name == name)
            ).first()
            if row is None:
                raise NotFound(f"registered model {name!r} does not exist")
            return self._registered_models(conn, [row])[0]

        return self._read(work)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        """Set a registered model's description. Raises NotFound."""
        check_name(name, "registered model name")

        def work(conn: Connection) -> None:
            self._lock_model(conn, name)
            conn.execute(
                sa.update(t.registered_models)
                .where(t.registered_models.c.name == name)
                .values(description=description, last_updated_time=now_ms())
            )

        self._write(work)
        return self.get_registered_model(name)

    def search_registered_models(
        self, filter_string: str | None, max_results: int, order_by: Sequence[str] | None
    ) -> list[RegisteredModel]:
        """Return registered models matching a filter (``name``, ``tags.<key>``)."""
        comparisons = parse_filter(filter_string)
        order = parse_order_by(order_by)
        text = filter_string or ""
        dialect = self.db.dialect
        rm = t.registered_models.c
        query = sa.select(t.registered_models)
        for cmp in comparisons:
            if cmp.kind == "attribute" and cmp.key == "name":
                check_value_type(cmp, numeric=False, text=text)
                query = query.where(compare(rm.name, cmp.op, cmp.value, dialect))
            elif cmp.kind == "tag":
                check_value_type(cmp, numeric=False, text=text)
                tg = t.registered_model_tags.c
                query = query.where(
                    sa.exists().where(
                        tg.name == rm.name,
                        tg.key == cmp.key,
                        compare(tg.value, cmp.op, cmp.value, dialect),
                    )
                )
            else:
                raise InvalidArgument(
                    f"invalid filter {text!r}: registered models filter on name or "
                    f"tags.<key>, not {cmp.kind}.{cmp.key}"
                )
        cols = {
            "name": rm.name,
            "creation_timestamp": rm.creation_time,
            "last_updated_timestamp": rm.last_updated_time,
        }
        order_cols = []
        for key in order:
            if key.kind != "attribute" or key.key not in cols:
                raise InvalidArgument(
                    f"order_by: registered models sort by {', '.join(cols)}, not {key.key!r}"
                )
            order_cols.append(cols[key.key].asc() if key.ascending else cols[key.key].desc())
        query = query.order_by(*order_cols, rm.name).limit(_positive(max_results))
        return self._read(lambda conn: self._registered_models(conn, conn.execute(query).all()))

    def delete_registered_model(self, name: str, actor: str) -> None:
        """Delete a registered model with its versions, tags and aliases (history is kept)."""
        check_name(name, "registered model name")

        def work(conn: Connection, events: _Events) -> None:
            self._lock_model(conn, name)
            self._event(conn, name, None, "model_deleted", actor)
            conn.execute(sa.delete(t.registered_models).where(t.registered_models.c.name == name))
            events.record(conn, "registered_model_deleted", name=name, approved_by=actor)

        self._change(work, on_driver=False)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        """Set a tag on a registered model. Raises NotFound."""
        check_name(name, "registered model name")
        key = _check_key(key, "model tag")
        text = _check_value(value, "tag", key)

        def work(conn: Connection) -> None:
            self._lock_model(conn, name)
            stmt = _insert(conn, t.registered_model_tags).values(name=name, key=key, value=text)
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["name", "key"], set_={"value": text})
            )

        self._write(work)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Delete a tag of a registered model. Raises NotFound for the model or the tag."""
        check_name(name, "registered model name")

        def work(conn: Connection) -> None:
            self._lock_model(conn, name)
            tg = t.registered_model_tags.c
            if (
                conn.execute(
                    sa.delete(t.registered_model_tags).where(tg.name == name, tg.key == key)
                ).rowcount
                == 0
            ):
                raise NotFound(f"registered model {name!r} has no tag {key!r}")

        self._write(work)

    def resolve_source(
        self, conn: Connection | DriverConnection, uri: str
    ) -> tuple[str, str | None]:
        """Return the ``runs:/`` source and run id a model URI stands for; check it exists."""
        parsed = parse_model_uri(uri)
        if parsed.scheme == "models":
            row = self._resolve_version(conn, uri)
            return row.source, row.run_id
        assert parsed.run_id is not None
        driver = DriverConnection.of(conn)
        # run_artifacts rows exist only for existing runs, so one query checks both.
        params = (parsed.run_id, f"{parsed.path}/MLmodel")
        if driver.first(_MODEL_ARTIFACT, params) is None:
            if driver.first(_RUN_EXISTS, (parsed.run_id,)) is None:
                raise NotFound(f"model URI {uri!r}: run {parsed.run_id} does not exist")
            raise NotFound(
                f"model URI {uri!r}: run {parsed.run_id} has no model at {parsed.path!r} "
                "(no MLmodel file logged there)"
            )
        return f"runs:/{parsed.run_id}/{parsed.path}", parsed.run_id

    def _resolve_version(self, conn: Connection | DriverConnection, uri: str) -> _VersionRow:
        parsed = parse_model_uri(uri)
        assert parsed.name is not None
        name = parsed.name
        driver = DriverConnection.of(conn)
        if parsed.version is not None:
            return self._require_version(driver, name, parsed.version)
        if parsed.alias is not None:
            version = driver.scalar(_ALIAS_VERSION, (name, parsed.alias))
            if version is None:
                self._require_model(driver, name)
                raise NotFound(f"model URI {uri!r}: model {name!r} has no alias {parsed.alias!r}")
            return self._require_version(driver, name, int(version))
        assert parsed.stage is not None
        if parsed.stage.lower() == "latest":
            row = driver.first(_NEWEST_VERSION, (name,))
        else:
            try:
                stage = check_stage(parsed.stage)
            except InvalidArgument as err:
                raise InvalidArgument(f"model URI {uri!r}: {err}") from None
            row = driver.first(_NEWEST_IN_STAGE, (name, stage))
        if row is None:
            self._require_model(driver, name)
            raise NotFound(f"model URI {uri!r}: model {name!r} has no version in {parsed.stage!r}")
        return _VersionRow._make(row)

    def resolve_model(self, uri: str) -> tuple[str, str, dict[str, tuple[str, int]]]:
        """Return the run id, artifact path and artifact manifest of the model a URI names.

        The manifest is ``{path: (sha256, size)}`` of the files under the model's path.
        """

        def work(driver: DriverConnection) -> tuple[str, str, dict[str, tuple[str, int]]]:
            source, _ = self.resolve_source(driver, uri)
            parsed = parse_model_uri(source)
            assert parsed.run_id is not None
            if source != uri:
                # A version's source must still hold a model (its run may have been deleted).
                self.resolve_source(driver, source)
            return parsed.run_id, parsed.path, _manifest(driver, parsed.run_id, parsed.path)

        return self._read_on_driver(work)

    def create_model_version(
        self,
        name: str,
        source: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        user_id: str | None = None,
        create_model: bool = False,
    ) -> ModelVersion:
        """Create the next version of a model from a model URI, atomically numbered."""
        check_name(name, "registered model name")
        check_name(source, "model source")
        tag_rows = {
            _check_key(k, "model version tag"): _check_value(v, "tag", k)
            for k, v in (tags or {}).items()
        }
        user = user_id or current_user()

        def work(driver: DriverConnection, events: _Events) -> ModelVersion:
            resolved, source_run = self.resolve_source(driver, source)
            if run_id is not None and source_run is not None and run_id != source_run:
                raise InvalidArgument(
                    f"run_id {run_id!r} does not match the run of source {source!r}"
                )
            now = now_ms()
            if create_model:
                driver.execute(_ENSURE_MODEL, (name, now, now))
            self._lock_and_touch_model(driver, name, now)
            version = self.db.next_value(driver, f"model_version:{name}")
            created = ModelVersion(
                name=name,
                version=version,
                creation_timestamp=now,
                last_updated_timestamp=now,
                description=description,
                user_id=user,
                current_stage="None",
                source=resolved,
                run_id=run_id or source_run,
                status="READY",
                run_link=run_link,
                tags=dict(tag_rows),
                aliases=[],  # numbers are never reused, so no alias can name this one yet
            )
            driver.execute(
                _INSERT_VERSION,
                (
                    name,
                    version,
                    now,
                    now,
                    description,
                    user,
                    "None",
                    resolved,
                    created.run_id,
                    run_link,
                    "READY",
                ),
            )
            driver.executemany(
                _INSERT_VERSION_TAGS, [(name, version, k, v) for k, v in tag_rows.items()]
            )
            self._event(driver, name, version, "created", user, to_stage="None", timestamp=now)
            events.record(
                driver,
                "model_version_created",
                name=name,
                version=version,
                source=source,
                user=user,
            )
            return created

        return self._change(work)

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        """Return one model version. Raises NotFound."""
        check_name(name, "registered model name")
        number = check_version(version)
        return self._read(
            lambda conn: self._model_versions(conn, [self._require_version(conn, name, number)])[0]
        )

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """Return the version an alias points at. Raises NotFound."""
        check_name(name, "registered model name")
        check_name(alias, "alias")

        def work(conn: Connection) -> ModelVersion:
            al = t.registered_model_aliases.c
            version = conn.execute(
                sa.select(al.version).where(al.name == name, al.alias == alias)
            ).scalar()
            if version is None:
                self._require_model(conn, name)
                raise NotFound(f"registered model {name!r} has no alias {alias!r}")
            return self._model_versions(conn, [self._require_version(conn, name, int(version))])[0]

        return self._read(work)

    def update_model_version(
        self, name: str, version: int | str, description: str | None
    ) -> ModelVersion:
        """Set a version's description. Raises NotFound."""
        check_name(name, "registered model name")
        number = check_version(version)

        def work(conn: Connection) -> None:
            self._require_version(conn, name, number)
            mv = t.model_versions.c
            conn.execute(
                sa.update(t.model_versions)
                .where(mv.name == name, mv.version == number)
                .values(description=description, last_updated_time=now_ms())
            )

        self._write(work)
        return self.get_model_version(name, number)

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: Any) -> None:
        """Set a tag on a model version. Raises NotFound."""
        check_name(name, "registered model name")
        number = check_version(version)
        key = _check_key(key, "model version tag")
        text = _check_value(value, "tag", key)

        def work(conn: Connection) -> None:
            self._require_version(conn, name, number)
            stmt = _insert(conn, t.model_version_tags).values(
                name=name, version=number, key=key, value=text
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name", "version", "key"], set_={"value": text}
                )
            )

        self._write(work)

    def delete_model_version_tag(self, name: str, version: int | str, key: str) -> None:
        """Delete a tag of a model version. Raises NotFound for the version or the tag."""
        check_name(name, "registered model name")
        number = check_version(version)

        def work(conn: Connection) -> None:
            self._require_version(conn, name, number)
            mt = t.model_version_tags.c
            deleted = conn.execute(
                sa.delete(t.model_version_tags).where(
                    mt.name == name, mt.version == number, mt.key == key
                )
            ).rowcount
            if deleted == 0:
                raise NotFound(f"model {name!r} version {number} has no tag {key!r}")

        self._write(work)

    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str,
        *,
        archive_existing_versions: bool,
        actor: str,
    ) -> ModelVersion:
        """Move a version to a stage, recording who did it; optionally archive the others."""
        check_name(name, "registered model name")
        number = check_version(version)
        target = check_stage(stage)
        if archive_existing_versions and target not in ("Staging", "Production"):
            raise InvalidArgument(
                f"archive_existing_versions applies to Staging or Production, not {target!r}"
            )

        def work(driver: DriverConnection, events: _Events) -> ModelVersion:
            now = now_ms()
            self._lock_and_touch_model(driver, name, now)
            row = self._require_version(driver, name, number)

            def move(version: int, old: str, new: str) -> None:
                driver.execute(_SET_STAGE, (new, now, name, version))
                self._event(
                    driver,
                    name,
                    version,
                    "stage",
                    actor,
                    from_stage=old,
                    to_stage=new,
                    timestamp=now,
                )
                events.record(
                    driver,
                    "stage_transitioned",
                    name=name,
                    version=version,
                    from_stage=old,
                    to_stage=new,
                    approved_by=actor,
                )

            if archive_existing_versions:
                for other, old in driver.all(_OTHERS_IN_STAGE, (name, target, number)):
                    move(int(other), old, "Archived")
            move(number, row.current_stage, target)
            before = self._model_versions(driver, [row])[0]
            return dataclasses.replace(before, current_stage=target, last_updated_timestamp=now)

        return self._change(work)

    def set_alias(self, name: str, alias: str, version: int | str, actor: str) -> None:
        """Point an alias at a version (moving it if set), recording who did it."""
        check_name(name, "registered model name")
        check_alias(alias)
        number = check_version(version)

        def work(conn: Connection, events: _Events) -> None:
            self._lock_model(conn, name)
            self._require_version(conn, name, number)
            al = t.registered_model_aliases.c
            old = conn.execute(
                sa.select(al.version).where(al.name == name, al.alias == alias)
            ).scalar()
            stmt = _insert(conn, t.registered_model_aliases).values(
                name=name, alias=alias, version=number
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name", "alias"], set_={"version": number}
                )
            )
            self._event(
                conn,
                name,
                number,
                "alias_set",
                actor,
                alias=alias,
                from_stage=None if old is None else f"v{old}",
            )
            self._touch_model(conn, name, now_ms())
            events.record(
                conn,
                "alias_set",
                name=name,
                alias=alias,
                version=number,
                previous_version=old,
                approved_by=actor,
            )

        self._change(work, on_driver=False)

    def delete_alias(self, name: str, alias: str, actor: str) -> None:
        """Remove an alias, recording who did it. Raises NotFound."""
        check_name(name, "registered model name")
        check_name(alias, "alias")

        def work(conn: Connection, events: _Events) -> None:
            self._lock_model(conn, name)
            al = t.registered_model_aliases.c
            version = conn.execute(
                sa.select(al.version).where(al.name == name, al.alias == alias)
            ).scalar()
            if version is None:
                raise NotFound(f"registered model {name!r} has no alias {alias!r}")
            conn.execute(
                sa.delete(t.registered_model_aliases).where(al.name == name, al.alias == alias)
            )
            self._event(conn, name, int(version), "alias_deleted", actor, alias=alias)
            events.record(
                conn,
                "alias_deleted",
                name=name,
                alias=alias,
                version=int(version),
                approved_by=actor,
            )

        self._change(work, on_driver=False)

    def get_latest_versions(self, name: str, stages: Sequence[str] | None) -> list[ModelVersion]:
        """Return the newest version in each stage (or in the given stages)."""
        check_name(name, "registered model name")
        wanted = None if not stages else [check_stage(s) for s in stages]

        def work(conn: Connection) -> list[ModelVersion]:
            self._require_model(conn, name)
            return self._latest_versions(conn, name, wanted)

        return self._read(work)

    def search_model_versions(
        self, filter_string: str | None, max_results: int, order_by: Sequence[str] | None
    ) -> list[ModelVersion]:
        """Return model versions matching a filter; runs in SQL."""
        order = None if order_by is None else tuple(order_by)
        query = _cached(_version_query, filter_string, max_results, order, self.db.dialect)
        sql, params = _compiled_query(query, self.db.dialect)
        return self._read_on_driver(
            lambda driver: self._model_versions(driver, driver.all(sql, params))
        )

    def delete_model_version(self, name: str, version: int | str, actor: str) -> None:
        """Delete a version (its number is never reused); its aliases go with it."""
        check_name(name, "registered model name")
        number = check_version(version)

        def work(conn: Connection, events: _Events) -> None:
            self._lock_model(conn, name)
            row = self._require_version(conn, name, number)
            al = t.registered_model_aliases.c
            for (alias,) in conn.execute(
                sa.select(al.alias).where(al.name == name, al.version == number)
            ):
                self._event(conn, name, number, "alias_deleted", actor, alias=alias)
            self._event(conn, name, number, "deleted", actor, from_stage=row.current_stage)
            mv = t.model_versions.c
            conn.execute(sa.delete(t.model_versions).where(mv.name == name, mv.version == number))
            self._touch_model(conn, name, now_ms())
            events.record(
                conn, "model_version_deleted", name=name, version=number, approved_by=actor
            )

        self._change(work, on_driver=False)

    def history(self, name: str, version: int | str | None) -> list[ModelVersionEvent]:
        """Return a model's (or one version's) history, oldest first. Raises NotFound."""
        check_name(name, "registered model name")
        number = None if version is None else check_version(version)

        def work(conn: Connection) -> list[ModelVersionEvent]:
            ev = t.model_registry_events.c
            query = sa.select(t.model_registry_events).where(ev.name == name)
            if number is not None:
                query = query.where(ev.version == number)
            rows = conn.execute(query.order_by(ev.id)).all()
            if not rows:
                if number is None:
                    raise NotFound(f"registered model {name!r} has no history (never existed)")
                self._require_version(conn, name, number)
            return [
                ModelVersionEvent(
                    name=r.name,
                    version=None if r.version is None else int(r.version),
                    kind=r.kind,
                    from_stage=r.from_stage,
                    to_stage=r.to_stage,
                    alias=r.alias,
                    approved_by=r.actor,
                    timestamp=r.timestamp,
                )
                for r in rows
            ]

        return self._read(work)

    def stage_at(
        self, name: str, stage: str, when: dt.datetime | int | float | str
    ) -> list[StageAssignment]:
        """Return the versions that were in ``stage`` at time ``when``, with who put them there."""
        target = check_stage(stage)
        at = _to_ms(when)
        events = [e for e in self.history(name, None) if e.timestamp <= at]
        state: dict[int, StageAssignment | None] = {}
        for e in events:
            if e.kind == "model_deleted":
                state.clear()
            elif e.version is None:
                continue
            elif e.kind == "created" or e.kind == "stage":
                state[e.version] = StageAssignment(
                    name, e.version, e.to_stage or "None", e.approved_by, e.timestamp
                )
            elif e.kind == "deleted":
                state.pop(e.version, None)
        return sorted(
            (a for a in state.values() if a is not None and a.stage == target),
            key=lambda a: a.version,
        )

    def log_evaluation(
        self,
        name: str,
        version: int | str,
        metrics: Mapping[str, Any],
        dataset: str | None,
        actor: str,
    ) -> ModelEvaluation:
        """Record an evaluation of a version on a dataset."""
        check_name(name, "registered model name")
        number = check_version(version)
        if not isinstance(metrics, Mapping) or not metrics:
            raise InvalidArgument(
                f"metrics must be a non-empty mapping of name to number, got {metrics!r}"
            )
        values = {_check_key(k, "metric"): _metric_value(k, v) for k, v in metrics.items()}
        if dataset is not None and not isinstance(dataset, str):
            raise InvalidArgument(f"dataset must be a string naming the data, got {dataset!r}")
        payload = json.dumps({k: (None if math.isnan(v) else v) for k, v in values.items()})
        now = now_ms()

        def work(conn: Connection, events: _Events) -> int:
            self._require_version(conn, name, number)
            result = conn.execute(
                sa.insert(t.model_evaluations)
                .values(
                    name=name,
                    version=number,
                    dataset=dataset,
                    metrics=payload,
                    created_by=actor,
                    timestamp=now,
                )
                .returning(t.model_evaluations.c.id)
            )
            eval_id = int(result.scalar_one())  # read before the recorders' savepoint
            events.record(
                conn, "model_evaluated", name=name, version=number, dataset=dataset, metrics=values
            )
            return eval_id

        eval_id = self._change(work, on_driver=False)
        return ModelEvaluation(eval_id, name, number, values, dataset, actor, now)

    def list_evaluations(self, name: str, version: int | str | None) -> list[ModelEvaluation]:
        """Return the evaluations of a model (or one version), oldest first."""
        check_name(name, "registered model name")
        number = None if version is None else check_version(version)

        def work(conn: Connection) -> list[ModelEvaluation]:
            if number is None:
                self._require_model(conn, name)
            else:
                self._require_version(conn, name, number)
            ev = t.model_evaluations.c
            query = sa.select(t.model_evaluations).where(ev.name == name)
            if number is not None:
                query = query.where(ev.version == number)
            return [
                ModelEvaluation(
                    int(r.id),
                    r.name,
                    int(r.version),
                    {
                        k: (math.nan if v is None else float(v))
                        for k, v in json.loads(r.metrics).items()
                    },
                    r.dataset,
                    r.created_by,
                    r.timestamp,
                )
                for r in conn.execute(query.order_by(ev.id))
            ]

        return self._read(work)


def _positive(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"max_results must be a positive integer, got {value!r}")
    return value


class _RunsAfterFilters(sa.sql.expression.Join):
    """The join of ``runs`` to the filters' data tables, ``runs`` probed after all of them.

    Without statistics SQLite starts from one data table's ``(key, value)`` index, then
    probes ``runs`` (two searches: its run-id index, then the row) before the other data
    tables (one primary-key search each), so it looks up runs the later filters drop. On
    SQLite this join is a ``CROSS JOIN``, which keeps every table on its left (the data
    tables, in an order the planner still chooses) ahead of ``runs``; elsewhere a plain join.
    """

    inherit_cache = True


@compiles(_RunsAfterFilters, "sqlite")
def _cross_join(join: _RunsAfterFilters, compiler: Any, from_linter: Any = None, **kw: Any) -> str:
    kw.pop("asfrom", None)
    if from_linter:
        from_linter.edges.update(
            itertools.product(join.left._from_objects, join.right._from_objects)
        )
    left = compiler.process(join.left, asfrom=True, from_linter=from_linter, **kw)
    right = compiler.process(join.right, asfrom=True, from_linter=from_linter, **kw)
    on = compiler.process(join.onclause, from_linter=from_linter, **kw)
    return f"{left} CROSS JOIN {right} ON {on}"


def _run_filter(
    cmp: Comparison, n: int, dialect: str, text: str
) -> tuple[Any, list[ColumnElement[bool]]]:
    """Compile one comparison: a data table and its conditions, or None and a ``runs`` one.

    Data tables hold one row per (run, key), so a join keeps exactly the runs an
    ``IN (subquery)`` would; as a join the planner can start from the selective
    ``(key, value)`` index instead of walking every run of the experiment.
    """
    r = t.runs.c
    if cmp.kind == "attribute":
        key = cmp.key
        if key in _RUN_ATTRS_STR:
            check_value_type(cmp, numeric=False, text=text)
            return None, [compare(r[_RUN_ATTRS_STR[key]], cmp.op, cmp.value, dialect)]
        if key in _RUN_ATTRS_NUM:
            check_value_type(cmp, numeric=True, text=text)
            return None, [compare(r[_RUN_ATTRS_NUM[key]], cmp.op, cmp.value, dialect)]
        raise InvalidArgument(
            f"invalid filter {text!r}: unknown run attribute {key!r}; expected one of "
            f"{', '.join(sorted([*_RUN_ATTRS_STR, *_RUN_ATTRS_NUM]))}"
        )
    check_value_type(cmp, numeric=cmp.kind == "metric", text=text)
    tables = {"metric": t.run_latest_metrics, "param": t.run_params, "tag": t.run_tags}
    table = tables[cmp.kind].alias(f"f{n}")
    on = [table.c.key == cmp.key, compare(table.c.value, cmp.op, cmp.value, dialect)]
    if cmp.kind == "metric":
        on.append(table.c.is_nan.is_(False))
    return table, on


def _filtered_runs(
    filters: list[tuple[Any, list[ColumnElement[bool]]]],
) -> Any:
    """Return ``runs`` inner-joined to the filters' data tables (all on the run id)."""
    if not filters:
        return t.runs
    first, first_on = filters[0]
    source = first
    for table, on in filters[1:]:
        source = source.join(table, sa.and_(table.c.run_id == first.c.run_id, *on))
    return _RunsAfterFilters(source, t.runs, sa.and_(t.runs.c.run_id == first.c.run_id, *first_on))


def _run_order(key: OrderKey, query: Any, n: int) -> tuple[Any, list[Any]]:
    r = t.runs.c
    if key.kind == "attribute":
        col_name = {**_RUN_ATTRS_STR, **_RUN_ATTRS_NUM}.get(key.key)
        if col_name is None:
            raise InvalidArgument(f"order_by: unknown run attribute {key.key!r}")
        col = r[col_name]
        return query, [col.asc() if key.ascending else col.desc()]
    if key.kind == "metric":
        table = t.run_latest_metrics.alias(f"ob{n}")
    elif key.kind == "param":
        table = t.run_params.alias(f"ob{n}")
    else:
        table = t.run_tags.alias(f"ob{n}")
    query = query.outerjoin(table, sa.and_(table.c.run_id == r.run_id, table.c.key == key.key))
    col = table.c.value
    return query, [col.is_(None), col.asc() if key.ascending else col.desc()]


@functools.lru_cache(maxsize=256, typed=True)
def _run_query(
    experiment_ids: tuple[str, ...] | None,
    filter_string: str | None,
    order_by: tuple[str, ...] | None,
    max_results: int,
    include_deleted: bool,
    columns: tuple[str, ...],
    dialect: str,
) -> sa.Select[Any]:
    """Return the query of ``search_runs``, reading ``columns`` of ``runs``.

    Raises:
        InvalidArgument: A malformed filter or order_by, or a bad ``max_results``.
    """
    comparisons = parse_filter(filter_string)
    order = parse_order_by(order_by)
    if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
        raise InvalidArgument(f"max_results must be a positive integer, got {max_results!r}")
    r = t.runs.c
    where: list[ColumnElement[bool]] = []
    if experiment_ids is not None:
        where.append(r.experiment_id.in_(experiment_ids))
    if not include_deleted:
        where.append(r.lifecycle_stage == "active")
    filters = []
    for n, cmp in enumerate(comparisons):
        table, conditions = _run_filter(cmp, n, dialect, filter_string or "")
        if table is None:
            where.extend(conditions)
        else:
            filters.append((table, conditions))
    source = _filtered_runs(filters)
    order_cols: list[Any] = []
    for n, key in enumerate(order):
        source, cols = _run_order(key, source, n)
        order_cols.extend(cols)
    return (
        sa.select(*(r[c] for c in columns))
        .select_from(source)
        .where(*where)
        .order_by(*order_cols, r.start_time.desc(), r.run_id)
        .limit(max_results)
    )


def _cached(builder: Any, *args: Any) -> Any:
    """Call an ``lru_cache``'d query builder; uncached when an argument is unhashable.

    The builders depend on their arguments only (no data), so a cached statement is never
    stale; unhashable (bad) input still gets the builder's own error.
    """
    try:
        hash(args)
    except TypeError:
        return builder.__wrapped__(*args)
    return builder(*args)


@functools.lru_cache(maxsize=256, typed=True)
def _version_query(
    filter_string: str | None,
    max_results: int,
    order_by: tuple[str, ...] | None,
    dialect: str,
) -> sa.Select[Any]:
    """Return the query of ``search_model_versions``; raises InvalidArgument for bad input."""
    comparisons = parse_filter(filter_string)
    order = parse_order_by(order_by)
    text = filter_string or ""
    mv = t.model_versions.c
    query = sa.select(t.model_versions)
    for cmp in comparisons:
        if cmp.kind == "attribute" and cmp.key in _MV_ATTRS_STR:
            check_value_type(cmp, numeric=False, text=text)
            query = query.where(compare(mv[_MV_ATTRS_STR[cmp.key]], cmp.op, cmp.value, dialect))
        elif cmp.kind == "attribute" and cmp.key in _MV_ATTRS_NUM:
            check_value_type(cmp, numeric=True, text=text)
            query = query.where(compare(mv[_MV_ATTRS_NUM[cmp.key]], cmp.op, cmp.value, dialect))
        elif cmp.kind == "tag":
            check_value_type(cmp, numeric=False, text=text)
            mt = t.model_version_tags.c
            query = query.where(
                sa.tuple_(mv.name, mv.version).in_(
                    sa.select(mt.name, mt.version).where(
                        mt.key == cmp.key, compare(mt.value, cmp.op, cmp.value, dialect)
                    )
                )
            )
        else:
            raise InvalidArgument(
                f"invalid filter {text!r}: model versions filter on "
                f"{', '.join(sorted([*_MV_ATTRS_STR, *_MV_ATTRS_NUM]))} or tags.<key>, "
                f"not {cmp.kind}.{cmp.key}"
            )
    order_cols = []
    for key in order:
        col_name = {**_MV_ATTRS_STR, **_MV_ATTRS_NUM}.get(key.key)
        if key.kind != "attribute" or col_name is None:
            raise InvalidArgument(f"order_by: model versions cannot sort by {key.key!r}")
        order_cols.append(mv[col_name].asc() if key.ascending else mv[col_name].desc())
    return query.order_by(*order_cols, mv.name, mv.version.desc()).limit(_positive(max_results))


_ADJECTIVES = (
    "amber",
    "bold",
    "brisk",
    "calm",
    "clever",
    "crisp",
    "eager",
    "gentle",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "quiet",
    "rapid",
    "sly",
    "steady",
    "sunny",
    "swift",
    "tidy",
    "witty",
)
_ANIMALS = (
    "badger",
    "crane",
    "deer",
    "eel",
    "falcon",
    "fox",
    "gecko",
    "heron",
    "ibis",
    "koala",
    "lynx",
    "mole",
    "newt",
    "otter",
    "panda",
    "quail",
    "seal",
    "stoat",
    "trout",
    "wren",
)


def _random_run_name() -> str:
    import random

    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}-{random.randint(0, 999)}"
