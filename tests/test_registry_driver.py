"""The driver path of the metadata database that the registry's hot operations run on.

``MetadataDB.run_on_driver`` and ``DriverConnection`` run prebuilt SQL on the sqlite3 or
psycopg connection itself; these tests hold them to what ``run_in_transaction`` promises
(atomic, errors translated, retried, broken connections dropped) on both backends.
"""

from __future__ import annotations

from typing import Any

import pytest

from ferrostore import errors
from ferrostore.metadata import MetadataDB
from ferrostore.metadata.db import SQL, DriverConnection

_INSERT = SQL("INSERT INTO counters (name, value) VALUES (?, ?)")
_VALUE = SQL("SELECT value FROM counters WHERE name = ?")


@pytest.fixture
def db(metadata_url: str) -> Any:
    with MetadataDB(metadata_url) as opened:
        yield opened


def test_sql_has_each_driver_placeholders() -> None:
    stmt = SQL("SELECT 1 WHERE 'a' LIKE 'a%' AND ? = ?")
    assert stmt.sqlite == "SELECT 1 WHERE 'a' LIKE 'a%' AND ? = ?"
    assert stmt.postgresql == "SELECT 1 WHERE 'a' LIKE 'a%%' AND %s = %s"
    assert SQL("x = ?", postgresql="y = %s").postgresql == "y = %s"


def test_commits_and_returns_what_fn_returned(db: MetadataDB) -> None:
    def work(driver: DriverConnection) -> int:
        driver.execute(_INSERT, ("a", 41))
        driver.executemany(_INSERT, [("b", 1), ("c", 2)])
        return int(driver.scalar(_VALUE, ("a",))) + 1

    assert db.run_on_driver(work) == 42
    rows = db.run_on_driver(
        lambda d: d.all(SQL("SELECT name, value FROM counters ORDER BY name")), readonly=True
    )
    assert rows == [("a", 41), ("b", 1), ("c", 2)]
    assert db.run_on_driver(lambda d: d.first(_VALUE, ("zzz",))) is None
    assert db.run_on_driver(lambda d: d.scalar(_VALUE, ("zzz",))) is None
    update = SQL("UPDATE counters SET value = value + 1 WHERE name <> ?")
    assert db.run_on_driver(lambda d: d.rowcount(update, ("a",))) == 2


def test_a_failed_unit_of_work_changes_nothing(db: MetadataDB) -> None:
    class Boom(Exception):
        pass

    def work(driver: DriverConnection) -> None:
        driver.execute(_INSERT, ("a", 1))
        raise Boom

    with pytest.raises(Boom):
        db.run_on_driver(work)
    assert db.run_on_driver(lambda d: d.scalar(_VALUE, ("a",))) is None
    # The connection went back to the pool usable.
    db.run_on_driver(lambda d: d.execute(_INSERT, ("a", 1)))
    assert db.run_on_driver(lambda d: d.scalar(_VALUE, ("a",))) == 1


def test_driver_errors_are_translated_and_roll_back(db: MetadataDB) -> None:
    db.run_on_driver(lambda d: d.execute(_INSERT, ("a", 1)))

    def duplicate(driver: DriverConnection) -> None:
        driver.execute(_INSERT, ("b", 1))
        driver.execute(_INSERT, ("a", 2))

    with pytest.raises(errors.AlreadyExists, match="exists already"):
        db.run_on_driver(duplicate)
    assert db.run_on_driver(lambda d: d.scalar(_VALUE, ("b",))) is None
    with pytest.raises(errors.StorageError):
        db.run_on_driver(lambda d: d.execute(SQL("SELECT * FROM no_such_table")))
    with pytest.raises(errors.InvalidArgument):
        db.run_on_driver(lambda d: None, retries=-1)
    with pytest.raises(errors.InvalidArgument):
        db.run_on_driver("not callable")  # type: ignore[arg-type]


def test_driver_statements_join_a_sqlalchemy_transaction(db: MetadataDB) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), db.transaction() as conn:
        DriverConnection.of(conn).execute(_INSERT, ("a", 1))
        assert db.next_value(conn, "a") == 2  # SQLAlchemy sees the driver's write
        raise Abort
    assert db.run_on_driver(lambda d: d.scalar(_VALUE, ("a",))) is None

    # A driver error inside run_in_transaction is translated as SQLAlchemy's are.
    db.run_on_driver(lambda d: d.execute(_INSERT, ("a", 1)))
    with pytest.raises(errors.AlreadyExists):
        db.run_in_transaction(lambda c: DriverConnection.of(c).execute(_INSERT, ("a", 1)))
    with pytest.raises(errors.AlreadyExists), db.transaction() as conn:
        DriverConnection.of(conn).execute(_INSERT, ("a", 1))


def test_next_value_is_one_counter_on_both_paths(db: MetadataDB) -> None:
    values = [
        db.run_on_driver(lambda d: db.next_value(d, "v")),
        db.run_in_transaction(lambda c: db.next_value(c, "v")),
        db.run_on_driver(lambda d: db.next_value(d, "v")),
    ]
    assert values == [1, 2, 3]
    with pytest.raises(errors.InvalidArgument):
        db.run_on_driver(lambda d: db.next_value(d, ""))


def test_retryable_errors_are_retried_then_reported(
    db: MetadataDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ferrostore.metadata.db as dbmod

    calls: list[int] = []
    dbapi_error = db._dbapi.OperationalError

    def flaky(driver: DriverConnection) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise dbapi_error("database is locked")
        return int(driver.scalar(SQL("SELECT 7")))

    monkeypatch.setattr(dbmod, "_is_retryable", lambda err: "locked" in str(err))
    monkeypatch.setattr(dbmod.time, "sleep", lambda _s: None)
    assert db.run_on_driver(flaky) == 7
    assert len(calls) == 3

    def always(driver: DriverConnection) -> None:
        raise dbapi_error("database is locked")

    with pytest.raises(errors.Conflict, match="after 3 attempts"):
        db.run_on_driver(always, retries=2)


def test_a_broken_connection_is_dropped_from_the_pool(db: MetadataDB) -> None:
    def break_it(driver: DriverConnection) -> None:
        driver._conn.close()
        driver.execute(SQL("SELECT 1"))

    with pytest.raises(errors.StorageError):
        db.run_on_driver(break_it, retries=0)
    # The closed connection was invalidated, not handed out again.
    assert db.run_on_driver(lambda d: d.scalar(SQL("SELECT 2"))) == 2


def test_sqlite_connections_get_a_larger_page_cache(tmp_path: Any) -> None:
    with MetadataDB(tmp_path / "m.db") as db:
        size = db.run_on_driver(lambda d: d.scalar(SQL("PRAGMA cache_size")))
        mode = db.run_on_driver(lambda d: d.scalar(SQL("PRAGMA journal_mode")))
    assert size == -65536
    assert mode == "wal"
