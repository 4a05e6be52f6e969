"""The metadata database: one SQLAlchemy Core engine over SQLite or PostgreSQL.

:class:`MetadataDB` opens (and creates) the database, brings its schema to the newest Alembic
revision, and hands out transactions. A plain path is a SQLite file; a ``postgresql://`` URL
is a PostgreSQL server reached through psycopg 3.

SQLite is set up for several processes writing at once: WAL journal (switched on once, by the
process that creates the schema, under the migration lock), ``synchronous=NORMAL``,
foreign keys on, a 30 s busy timeout, and ``BEGIN IMMEDIATE`` for every write transaction so
writers queue for the lock up front instead of failing halfway with "database is locked".

Hot paths run prebuilt :class:`SQL` on the driver's own connection
(:meth:`MetadataDB.run_on_driver`): SQLAlchemy's work per statement (compile cache lookup,
events, result wrapping) costs tens of microseconds, more than a point query in SQLite.

Example:
    >>> with MetadataDB("sqlite://") as db:
    ...     with db.transaction() as conn:
    ...         db.next_value(conn, "run_id")
    1
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from ferrostore.errors import AlreadyExists, Conflict, InvalidArgument, StorageError
from ferrostore.metadata.tables import counters

__all__ = ["METADATA_URL_ENV", "SQL", "DriverConnection", "MetadataDB", "default_metadata_url"]

T = TypeVar("T")

METADATA_URL_ENV = "FERROSTORE_METADATA_URL"
"""Environment variable naming the metadata database (a path or a URL)."""

_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_SQLITE_BUSY_TIMEOUT_S = 30.0
# Page cache per connection, in KiB (negative = KiB for the pragma). SQLite's default of 2 MiB
# thrashes once the registry tables outgrow it (10k runs: a filtered search runs 2.5x slower);
# the memory is only taken as pages are read.
_SQLITE_CACHE_KIB = 65536
_SQLITE_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
# int.from_bytes(b"ferrostr", "big"): one fixed key shared by every ferrostore process.
_PG_MIGRATION_LOCK_ID = 0x6665_7272_6F73_7472
_PG_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
_PG_UNIQUE_VIOLATION = "23505"
_SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
# Execution option read by the SQLite "begin" hook: "IMMEDIATE" (default) or "DEFERRED".
_SQLITE_BEGIN_OPTION = "ferrostore_sqlite_begin"


def default_metadata_url(root: str | os.PathLike[str]) -> str:
    """Return the path of the default SQLite metadata database of a project.

    Args:
        root: The project's root folder.

    Returns:
        ``<root>/.ferrostore/metadata.db`` as a string, usable as ``MetadataDB(...)``.

    Example:
        >>> default_metadata_url("/srv/project")
        '/srv/project/.ferrostore/metadata.db'
    """
    return str(Path(root) / ".ferrostore" / "metadata.db")


class SQL:
    """One prebuilt statement, as the text each driver takes.

    Written once with SQLite's ``?`` placeholders; psycopg's text is the same with ``%s``
    (and ``%`` doubled) unless given. Keep ``?`` out of string literals.

    Args:
        sqlite: The statement for sqlite3 (``?`` placeholders).
        postgresql: The statement for psycopg, when it differs by more than the placeholders.

    Example:
        >>> SQL("SELECT value FROM counters WHERE name = ?").postgresql
        'SELECT value FROM counters WHERE name = %s'
    """

    __slots__ = ("postgresql", "sqlite")

    def __init__(self, sqlite: str, postgresql: str | None = None) -> None:
        self.sqlite = sqlite
        self.postgresql = (
            sqlite.replace("%", "%%").replace("?", "%s") if postgresql is None else postgresql
        )

    def __repr__(self) -> str:
        return f"SQL({self.sqlite!r})"


class DriverConnection:
    """The driver's connection (sqlite3 or psycopg) inside one open transaction.

    Runs :class:`SQL` statements with positional parameters and returns plain tuples, without
    SQLAlchemy's per-statement work. Values come back as the driver gives them: a boolean
    column reads 0/1 on SQLite.

    Args:
        dbapi_connection: The sqlite3 or psycopg connection, in a transaction.
        dialect: ``"sqlite"`` or ``"postgresql"``.
    """

    __slots__ = ("_conn", "_pg", "dialect")

    def __init__(self, dbapi_connection: Any, dialect: str) -> None:
        self._conn = dbapi_connection
        self._pg = dialect == "postgresql"
        self.dialect = dialect

    @classmethod
    def of(cls, conn: Connection | DriverConnection) -> DriverConnection:
        """Return the driver connection under a SQLAlchemy connection (same transaction)."""
        if isinstance(conn, DriverConnection):
            return conn
        return cls(conn.connection.driver_connection, conn.dialect.name)

    def execute(self, stmt: SQL, params: Sequence[Any] = ()) -> Any:
        """Run one statement; return the driver's cursor."""
        return self._conn.execute(stmt.postgresql if self._pg else stmt.sqlite, params)

    def executemany(self, stmt: SQL, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row (psycopg pipelines them)."""
        if rows:
            self._conn.cursor().executemany(stmt.postgresql if self._pg else stmt.sqlite, rows)

    def first(self, stmt: SQL, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Return the first row of a query, or ``None``."""
        row: tuple[Any, ...] | None = self.execute(stmt, params).fetchone()
        return row

    def scalar(self, stmt: SQL, params: Sequence[Any] = ()) -> Any:
        """Return the first column of the first row, or ``None`` when there is no row."""
        row = self.execute(stmt, params).fetchone()
        return None if row is None else row[0]

    def all(self, stmt: SQL, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Return every row of a query."""
        rows: list[tuple[Any, ...]] = self.execute(stmt, params).fetchall()
        return rows

    def rowcount(self, stmt: SQL, params: Sequence[Any] = ()) -> int:
        """Run a write; return how many rows it matched."""
        return int(self.execute(stmt, params).rowcount)


_NEXT_VALUE = SQL(
    "INSERT INTO counters (name, value) VALUES (?, 1) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value"
)
_NEXT_VALUE_UPSERT = SQL(
    "INSERT INTO counters (name, value) VALUES (?, 1) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1"
)
_COUNTER_VALUE = SQL("SELECT value FROM counters WHERE name = ?")


class MetadataDB:
    """The shared metadata database of ferrostore, schema kept at the newest migration.

    Opening runs the Alembic migrations up to head, safely when several processes open a new
    database at once (a file lock on SQLite, an advisory lock on PostgreSQL); an up-to-date
    database costs one query to open. Unlike MLflow's SQLite store, concurrent writers from
    several processes are supported: transactions serialize instead of failing.

    Args:
        url_or_path: A filesystem path (a SQLite file, created with its parent folder), a
            ``sqlite:///path`` URL, ``sqlite://`` for an in-memory database (tests), or a
            ``postgresql://`` / ``postgresql+psycopg://`` URL.

    Raises:
        InvalidArgument: The value is not a path or a URL of a supported scheme.
        StorageError: The database cannot be opened or migrated: a path that is a folder or
            not a database, permissions, an unreachable server.

    Example:
        >>> db = MetadataDB("sqlite://")
        >>> db.dialect
        'sqlite'
        >>> db.close()
    """

    def __init__(self, url_or_path: str | os.PathLike[str]) -> None:
        self._given = _describe(url_or_path)
        sa_url, sqlite_file = _parse(url_or_path)
        self._sqlite_file = sqlite_file
        self._url = sa_url.render_as_string(hide_password=True)
        self._engine = _create_engine(sa_url, self._given)
        self._dialect = self._engine.dialect.name
        self._dbapi = self._engine.dialect.loaded_dbapi
        try:
            self._upgrade_to_head()
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_env(cls, default_root: str | os.PathLike[str]) -> Self:
        """Open the database named by ``FERROSTORE_METADATA_URL``, or the project default.

        Args:
            default_root: Project root used when the variable is unset or empty: the database
                is then ``default_metadata_url(default_root)``.

        Returns:
            The opened database.

        Raises:
            InvalidArgument: The variable holds an unsupported URL.
            StorageError: The database cannot be opened.
        """
        value = os.environ.get(METADATA_URL_ENV, "").strip()
        return cls(value or default_metadata_url(default_root))

    @property
    def url(self) -> str:
        """The database URL, password masked (``***``); safe to log."""
        return self._url

    @property
    def dialect(self) -> str:
        """The backend: ``"sqlite"`` or ``"postgresql"``."""
        return self._dialect

    @property
    def engine(self) -> Engine:
        """The underlying SQLAlchemy engine (Core), for queries the helpers do not cover."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection. The object must not be used afterwards."""
        self._engine.dispose()

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
        return f"MetadataDB({self._url!r})"

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Connection]:
        """Open one transaction: commit when the block ends, roll back if it raises.

        The block runs once; to retry on serialization failures or a busy SQLite file, use
        :meth:`run_in_transaction`. Database errors are translated to ``ferrostore.errors``;
        any other exception propagates unchanged after the rollback.

        Args:
            readonly: On SQLite, start a deferred transaction that does not take the write
                lock (readers then never wait for writers). Ignored on PostgreSQL.

        Yields:
            A connection inside the transaction.

        Raises:
            AlreadyExists: A row with the same key exists already.
            Conflict: A constraint or a concurrent transaction prevented the change.
            StorageError: The database failed (I/O, connection lost, locked too long).

        Example:
            >>> with MetadataDB("sqlite://") as db, db.transaction() as conn:
            ...     db.next_value(conn, "x")
            1
        """
        with self._translate_errors(), self._begin(readonly=readonly) as conn:
            yield conn

    def run_in_transaction(
        self,
        fn: Callable[[Connection], T],
        *,
        retries: int = 8,
        readonly: bool = False,
    ) -> T:
        """Call ``fn(conn)`` in one transaction, re-running it when the backend asks to.

        Retries, with jittered exponential backoff, on PostgreSQL serialization failures and
        deadlocks (SQLSTATE 40001, 40P01) and on SQLite busy/locked errors; each attempt is a
        fresh transaction, so ``fn`` must not keep state between calls.

        Args:
            fn: The unit of work; its return value is returned after the commit.
            retries: How many times to re-run after a retryable failure (0 = run once).
            readonly: As in :meth:`transaction`.

        Returns:
            What ``fn`` returned.

        Raises:
            InvalidArgument: ``retries`` is negative or ``fn`` is not callable.
            Conflict: Still failing with a retryable error after ``retries`` retries, or a
                constraint prevented the change.
            AlreadyExists: A row with the same key exists already.
            StorageError: The database failed.

        Example:
            >>> with MetadataDB("sqlite://") as db:
            ...     db.run_in_transaction(lambda conn: db.next_value(conn, "x"))
            1
        """
        if not callable(fn):
            raise InvalidArgument(f"fn must be callable, got {fn!r}")
        return self._retrying(lambda: self._run_once(fn, readonly), retries)

    def run_on_driver(
        self,
        fn: Callable[[DriverConnection], T],
        *,
        retries: int = 8,
        readonly: bool = False,
    ) -> T:
        """Call ``fn(driver)`` in one transaction on the driver's own connection.

        As :meth:`run_in_transaction` (same retries, same errors), for prebuilt :class:`SQL`
        statements: ``fn`` gets a :class:`DriverConnection`, and a transaction costs a pool
        checkout and the driver's BEGIN and COMMIT, with nothing of SQLAlchemy per statement.

        Args:
            fn: The unit of work; its return value is returned after the commit.
            retries: How many times to re-run after a retryable failure (0 = run once).
            readonly: On SQLite, a deferred transaction (no write lock). Ignored on PostgreSQL.

        Returns:
            What ``fn`` returned.

        Raises:
            InvalidArgument: ``retries`` is negative or ``fn`` is not callable.
            Conflict: Still failing with a retryable error after ``retries`` retries, or a
                constraint prevented the change.
            AlreadyExists: A row with the same key exists already.
            StorageError: The database failed.

        Example:
            >>> with MetadataDB("sqlite://") as db:
            ...     db.run_on_driver(lambda driver: driver.scalar(SQL("SELECT 1 + 1")))
            2
        """
        if not callable(fn):
            raise InvalidArgument(f"fn must be callable, got {fn!r}")
        return self._retrying(lambda: self._run_on_driver_once(fn, readonly), retries)

    def _retrying(self, attempt_once: Callable[[], T], retries: int) -> T:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument(f"retries must be an integer >= 0, got {retries!r}")
        attempt = 0
        while True:
            try:
                return attempt_once()
            except (exc.DBAPIError, self._dbapi.Error) as err:
                if not _is_retryable(err) or attempt >= retries:
                    raise self._translate(err, attempts=attempt + 1) from err
            attempt += 1
            time.sleep(min(1.0, 0.01 * 2**attempt) * random.uniform(0.5, 1.5))

    def _run_once(self, fn: Callable[[Connection], T], readonly: bool) -> T:
        with self._begin(readonly=readonly) as conn:
            return fn(conn)

    def _run_on_driver_once(self, fn: Callable[[DriverConnection], T], readonly: bool) -> T:
        pooled = self._engine.raw_connection()
        try:
            dbapi_conn: Any = pooled.driver_connection
            try:
                if self._dialect == "sqlite":
                    dbapi_conn.execute("BEGIN DEFERRED" if readonly else "BEGIN IMMEDIATE")
                result = fn(DriverConnection(dbapi_conn, self._dialect))
                dbapi_conn.commit()
            except BaseException as err:
                self._abandon(pooled, err)
                raise
            return result
        finally:
            pooled.close()

    def _abandon(self, pooled: Any, err: BaseException) -> None:
        """Roll back a failed driver transaction; drop the connection if it is broken."""
        dbapi_conn = pooled.driver_connection
        lost = isinstance(err, self._dbapi.Error) and self._engine.dialect.is_disconnect(
            err, dbapi_conn, None
        )
        if not lost:
            try:
                dbapi_conn.rollback()
                return
            except self._dbapi.Error:
                pass
        pooled.invalidate()

    def next_value(self, conn: Connection | DriverConnection, name: str) -> int:
        """Advance the counter ``name`` by one and return its new value, starting at 1.

        Runs inside the caller's transaction: the value is taken when it commits and is never
        handed out twice, even with many processes racing; a rolled-back transaction leaves
        the counter unchanged (so its value is handed out again by the next caller).

        Args:
            conn: A connection from :meth:`transaction` or :meth:`run_in_transaction`, or the
                driver connection of :meth:`run_on_driver`.
            name: The counter's name, a non-empty string.

        Returns:
            The new value.

        Raises:
            InvalidArgument: ``name`` is not a non-empty string.

        Example:
            >>> with MetadataDB("sqlite://") as db, db.transaction() as conn:
            ...     [db.next_value(conn, "v") for _ in range(3)]
            [1, 2, 3]
        """
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"counter name must be a non-empty string, got {name!r}")
        if isinstance(conn, DriverConnection):
            if conn.dialect == "postgresql" or _SQLITE_HAS_RETURNING:
                return int(conn.scalar(_NEXT_VALUE, (name,)))
            conn.execute(_NEXT_VALUE_UPSERT, (name,))
            return int(conn.scalar(_COUNTER_VALUE, (name,)))
        insert = pg_dialect.insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert
        stmt = insert(counters).values(name=name, value=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[counters.c.name], set_={"value": counters.c.value + 1}
        )
        if conn.dialect.name == "postgresql" or _SQLITE_HAS_RETURNING:
            return int(conn.execute(stmt.returning(counters.c.value)).scalar_one())
        # Old SQLite: the write lock taken by the upsert is held until commit, so reading
        # back the row inside the same transaction is still atomic.
        conn.execute(stmt)
        query = sa.select(counters.c.value).where(counters.c.name == name)
        return int(conn.execute(query).scalar_one())

    def current_revision(self) -> str | None:
        """Return the Alembic revision the database is at (``None`` if never migrated).

        Raises:
            StorageError: The database cannot be read.
        """
        with self._translate_errors(), self._begin(readonly=True) as conn:
            return _current_revision(conn)

    @contextlib.contextmanager
    def _begin(self, *, readonly: bool) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn.execution_options(
                    **{_SQLITE_BEGIN_OPTION: "DEFERRED" if readonly else "IMMEDIATE"}
                )
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except (exc.DBAPIError, self._dbapi.Error) as err:
            raise self._translate(err) from err
        except exc.SQLAlchemyError as err:
            raise StorageError(f"metadata database {self._given}: {err}") from err

    def _translate(self, err: Exception, *, attempts: int = 1) -> Exception:
        """Map a database error (SQLAlchemy's, or the driver's own) to ferrostore's."""
        orig = err.orig if isinstance(err, exc.DBAPIError) else err
        detail = str(orig).strip() or type(orig).__name__
        where = f"metadata database {self._given}"
        if isinstance(err, exc.IntegrityError) or isinstance(orig, self._dbapi.IntegrityError):
            if _is_unique_violation(orig):
                return AlreadyExists(f"{where}: a row with this key exists already: {detail}")
            return Conflict(f"{where}: the change violates a constraint: {detail}")
        if _is_retryable(err):
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            return Conflict(f"{where}: concurrent transactions conflicted{tries}: {detail}")
        return StorageError(f"{where}: {detail}")

    def _upgrade_to_head(self) -> None:
        head = _head_revision()
        with self._translate_errors():
            with self._begin(readonly=True) as conn:
                if _current_revision(conn) == head and self._journal_is_set(conn):
                    return
            with self._migration_connection() as conn, conn.begin():
                current = _current_revision(conn)
                if current == head:
                    return
                if current is not None and current not in _known_revisions():
                    raise StorageError(
                        f"metadata database {self._given} is at schema revision {current!r}, "
                        f"newer than this ferrostore knows (head {head!r}); upgrade ferrostore"
                    )
                from alembic import command

                config = _alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")

    def _journal_is_set(self, conn: Connection) -> bool:
        """False for a SQLite file not in WAL mode yet; PostgreSQL and memory have no switch."""
        if self._sqlite_file is None:
            return True
        return conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"

    @contextlib.contextmanager
    def _migration_connection(self) -> Iterator[Connection]:
        """Yield a connection, outside a transaction, that holds the migration lock."""
        if self._dialect == "postgresql":
            with self._engine.connect() as conn:
                conn.execute(sa.select(sa.func.pg_advisory_lock(_PG_MIGRATION_LOCK_ID)))
                conn.commit()
                try:
                    yield conn
                finally:
                    if conn.in_transaction():
                        conn.rollback()
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(_PG_MIGRATION_LOCK_ID)))
                    conn.commit()
            return
        lock_fd = None
        if self._sqlite_file is not None:  # in-memory SQLite: one process, nothing to lock
            lock_path = self._sqlite_file.with_name(self._sqlite_file.name + ".migrate.lock")
            try:
                lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise StorageError(
                    f"metadata database {self._given}: cannot open lock file "
                    f"{str(lock_path)!r}: {err}"
                ) from err
        try:
            if lock_fd is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            with self._engine.connect() as conn:
                if lock_fd is not None:
                    # The journal mode is kept in the file. Switching it needs a write lock
                    # that SQLite refuses at once, busy timeout or not, while another
                    # connection is switching too: so one process switches, under the lock.
                    conn.connection.driver_connection.execute("PRAGMA journal_mode = WAL")
                conn.execution_options(**{_SQLITE_BEGIN_OPTION: "IMMEDIATE"})
                yield conn
        finally:
            if lock_fd is not None:
                os.close(lock_fd)  # closing the descriptor releases the lock


def _describe(url_or_path: object) -> str:
    """Return the value as given, password masked, for error messages."""
    text = os.fspath(url_or_path) if isinstance(url_or_path, os.PathLike) else url_or_path
    if isinstance(text, str) and "://" in text:
        with contextlib.suppress(exc.ArgumentError, ValueError):
            return repr(make_url(text).render_as_string(hide_password=True))
    return repr(text)


def _parse(url_or_path: str | os.PathLike[str]) -> tuple[URL, Path | None]:
    """Turn the user's value into a SQLAlchemy URL and, for a SQLite file, its path."""
    if isinstance(url_or_path, os.PathLike):
        raw: object = os.fspath(url_or_path)
    else:
        raw = url_or_path
    if not isinstance(raw, str):
        raise InvalidArgument(
            f"metadata database must be a path or a URL string, got {url_or_path!r}"
        )
    if not raw.strip():
        raise InvalidArgument("metadata database must be a path or a URL, got an empty string")
    if "://" not in raw:
        path = _sqlite_path(raw, raw)
        return URL.create("sqlite+pysqlite", database=str(path)), path
    try:
        url = make_url(raw)
    except (exc.ArgumentError, ValueError) as err:
        raise InvalidArgument(f"metadata database URL {_describe(raw)} is malformed") from err
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if url.database in (None, "", ":memory:"):
            return url.set(drivername="sqlite+pysqlite", database=":memory:"), None
        path = _sqlite_path(url.database, raw)
        return url.set(drivername="sqlite+pysqlite", database=str(path)), path
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return url.set(drivername="postgresql+psycopg"), None
    raise InvalidArgument(
        f"metadata database URL {_describe(raw)} has an unsupported scheme "
        f"{url.drivername!r}; expected a path, sqlite:///path, postgresql://... "
        "or postgresql+psycopg://..."
    )


def _sqlite_path(database: str, given: str) -> Path:
    path = Path(database).expanduser().absolute()
    if path.is_dir():
        raise StorageError(f"metadata database {given!r} is a folder; expected a SQLite file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(
            f"metadata database {given!r}: cannot create folder {str(path.parent)!r}: {err}"
        ) from err
    return path


def _create_engine(url: URL, given: str) -> Engine:
    if url.get_backend_name() == "sqlite":
        kwargs: dict[str, Any] = {
            "connect_args": {"timeout": _SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        }
        if url.database == ":memory:":
            kwargs["poolclass"] = StaticPool
        engine = sa.create_engine(url, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 10}
    try:
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except ImportError as err:
        raise InvalidArgument(
            f"metadata database {given} needs psycopg 3: pip install 'ferrostore[postgres]'"
        ) from err


def _install_sqlite_hooks(engine: Engine) -> None:
    """Apply the connection pragmas and take over BEGIN from pysqlite (SQLAlchemy's recipe)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # pysqlite would otherwise BEGIN (deferred) behind our back; we emit BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _is_retryable(err: BaseException) -> bool:
    orig = err.orig if isinstance(err, exc.DBAPIError) else err
    if getattr(orig, "sqlstate", None) in _PG_RETRYABLE_SQLSTATES:
        return True
    if isinstance(orig, sqlite3.OperationalError):
        if getattr(orig, "sqlite_errorcode", None) in _SQLITE_BUSY_CODES:
            return True
        message = str(orig).lower()
        return "database is locked" in message or "database is busy" in message
    return False


def _is_unique_violation(orig: object) -> bool:
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        return True
    message = str(orig)
    return "UNIQUE constraint failed" in message or "PRIMARY KEY" in message


def _current_revision(conn: Connection) -> str | None:
    # Alembic's own table read directly: importing Alembic to open an up-to-date database
    # costs ~12 MB and ~100 ms per process.
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


@functools.cache
def _script_directory() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _script_directory().walk_revisions())


HEAD_REVISION = "0007_run_data_by_run"
"""The newest migration's revision (a test checks it against the migration scripts)."""


def _head_revision() -> str:
    return HEAD_REVISION
