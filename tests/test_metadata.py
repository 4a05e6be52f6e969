"""The shared metadata database: schema migrations, transactions, counters, errors."""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from ferrostore import errors
from ferrostore.metadata import MetadataDB, default_metadata_url, tables


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(tables.__file__).parent / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


HEAD = _head()


def test_head_revision_constant_is_the_newest_migration():
    from ferrostore.metadata import db

    assert db.HEAD_REVISION == HEAD


def test_opening_an_up_to_date_database_does_not_import_alembic(tmp_path):
    path = tmp_path / "m.db"
    MetadataDB(path).close()
    code = (
        "import sys; from ferrostore.metadata import MetadataDB; "
        f"db = MetadataDB({str(path)!r}); db.close(); "
        "print(any(m == 'alembic' or m.startswith('alembic.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


N_PROCS = 8
N_VALUES = 50
TIMEOUT_S = 60
N_NEW_FILES = 20


def _info(db: MetadataDB) -> dict[str, str]:
    with db.transaction(readonly=True) as conn:
        rows = conn.execute(sa.select(tables.ferrostore_info)).all()
    return dict(rows)


def _count(db: MetadataDB, table: str) -> int:
    with db.transaction(readonly=True) as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


# Workers run in "spawn" children: module-level, arguments and results picklable.
def _open_worker(url: str, start: multiprocessing.synchronize.Event, results) -> None:  # type: ignore[no-untyped-def]
    try:
        start.wait(TIMEOUT_S)
        with MetadataDB(url) as db:
            results.put(("ok", _info(db)["instance_id"]))
    except BaseException as err:
        results.put(("error", f"{type(err).__name__}: {err}"))


def _counter_worker(url: str, start: multiprocessing.synchronize.Event, results) -> None:  # type: ignore[no-untyped-def]
    try:
        with MetadataDB(url) as db:
            start.wait(TIMEOUT_S)
            values = []
            for _ in range(N_VALUES):
                with db.transaction() as conn:
                    values.append(db.next_value(conn, "race"))
        results.put(("ok", values))
    except BaseException as err:
        results.put(("error", f"{type(err).__name__}: {err}"))


def _open_new_files_worker(paths: list[str], barrier, results) -> None:  # type: ignore[no-untyped-def]
    try:
        instance_ids = []
        for path in paths:
            barrier.wait(TIMEOUT_S)  # every process opens each new file at the same moment
            with MetadataDB(path) as db:
                instance_ids.append(_info(db)["instance_id"])
        results.put(("ok", instance_ids))
    except BaseException as err:
        barrier.abort()
        results.put(("error", f"{type(err).__name__}: {err}"))


def _run_processes(target, arg: object, *, barrier: bool = False) -> list[object]:  # type: ignore[no-untyped-def]
    """Run ``target(arg, start, results)`` in N_PROCS processes started together.

    ``start`` is an event the parent sets, or with ``barrier`` a barrier of the processes.
    """
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(N_PROCS) if barrier else ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(arg, start, results)) for _ in range(N_PROCS)]
    for proc in procs:
        proc.start()
    try:
        if not barrier:
            start.set()
        outcomes = [results.get(timeout=TIMEOUT_S) for _ in procs]
    finally:
        for proc in procs:
            proc.join(TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
        results.close()
        results.join_thread()
    failures = [detail for status, detail in outcomes if status != "ok"]
    assert not failures, failures
    assert all(proc.exitcode == 0 for proc in procs)
    return [detail for _, detail in outcomes]


def test_open_creates_schema_at_head(metadata_url: str) -> None:
    with MetadataDB(metadata_url) as db:
        assert db.current_revision() == HEAD
        names = set(sa.inspect(db.engine).get_table_names())
        assert {"alembic_version", "ferrostore_info", "counters"} <= names
        info = _info(db)
        assert uuid.UUID(info["instance_id"])
        assert info["created_at"]
        expected = "postgresql" if metadata_url.startswith("postgresql") else "sqlite"
        assert db.dialect == expected
        with db.engine.connect() as conn:
            assert conn.dialect.name == db.dialect


def test_reopen_is_noop(metadata_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with MetadataDB(metadata_url) as db:
        first = _info(db)
    from alembic import command

    def _no_upgrade(*args: object, **kwargs: object) -> None:
        raise AssertionError("an up-to-date database must not be migrated again")

    monkeypatch.setattr(command, "upgrade", _no_upgrade)
    with MetadataDB(metadata_url) as db:
        assert _info(db) == first
        assert db.current_revision() == HEAD


def test_concurrent_open_of_new_database(metadata_url: str) -> None:
    instance_ids = _run_processes(_open_worker, metadata_url)
    assert len(set(instance_ids)) == 1
    with MetadataDB(metadata_url) as db:
        assert _count(db, "ferrostore_info") == 2
        assert _count(db, "alembic_version") == 1
        assert _info(db)["instance_id"] == instance_ids[0]


def test_processes_creating_sqlite_files_at_once_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL takes a write lock that SQLite refuses at once, busy timeout
    # or not, to a second process switching at the same moment.
    paths = [str(tmp_path / f"metadata-{i}.db") for i in range(N_NEW_FILES)]
    per_process = _run_processes(_open_new_files_worker, paths, barrier=True)
    for i, path in enumerate(paths):
        assert len({instance_ids[i] for instance_ids in per_process}) == 1  # type: ignore[index]
        with MetadataDB(path) as db, db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_opening_a_rollback_journal_file_switches_it_to_wal(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    MetadataDB(path).close()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as raw:
        assert raw.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    with MetadataDB(path) as db, db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert db.current_revision() == HEAD


def test_next_value_races_lose_nothing(metadata_url: str) -> None:
    MetadataDB(metadata_url).close()
    per_process = _run_processes(_counter_worker, metadata_url)
    values = sorted(v for chunk in per_process for v in chunk)  # type: ignore[attr-defined]
    assert values == list(range(1, N_PROCS * N_VALUES + 1))
    for chunk in per_process:
        assert chunk == sorted(chunk)  # type: ignore[type-var]
    with MetadataDB(metadata_url) as db, db.transaction() as conn:
        assert db.next_value(conn, "race") == N_PROCS * N_VALUES + 1
        assert db.next_value(conn, "other") == 1


def test_failed_transaction_changes_nothing(metadata_url: str) -> None:
    with MetadataDB(metadata_url) as db:
        with db.transaction() as conn:
            assert db.next_value(conn, "c") == 1
        with pytest.raises(RuntimeError, match="boom"), db.transaction() as conn:
            assert db.next_value(conn, "c") == 2
            conn.execute(sa.insert(tables.ferrostore_info).values(key="k", value="v"))
            raise RuntimeError("boom")

        def _work(conn: sa.Connection) -> None:
            db.next_value(conn, "c")
            raise KeyError("inner")

        with pytest.raises(KeyError, match="inner"):
            db.run_in_transaction(_work)
        assert "k" not in _info(db)
        with db.transaction() as conn:
            assert db.next_value(conn, "c") == 2


def test_duplicate_key_is_already_exists_and_rolls_back(metadata_url: str) -> None:
    with MetadataDB(metadata_url) as db:
        with pytest.raises(errors.AlreadyExists, match="exists already"), db.transaction() as conn:
            db.next_value(conn, "dup")
            conn.execute(sa.insert(tables.ferrostore_info).values(key="instance_id", value="x"))
        with db.transaction() as conn:
            assert db.next_value(conn, "dup") == 1


def test_database_from_a_newer_ferrostore_is_refused(metadata_url: str) -> None:
    with MetadataDB(metadata_url) as db, db.transaction() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999_future'"))
    with pytest.raises(errors.StorageError, match="0999_future") as info:
        MetadataDB(metadata_url)
    assert "upgrade ferrostore" in str(info.value)


def test_postgres_url_uses_psycopg_and_masks_password(postgres_database_url: str) -> None:
    assert postgres_database_url.startswith("postgresql://")
    with MetadataDB(postgres_database_url) as db:
        assert db.engine.url.drivername == "postgresql+psycopg"
        assert db.dialect == "postgresql"
        assert db.url.startswith("postgresql+psycopg://")
    url = sa.engine.make_url(postgres_database_url).set(drivername="postgresql+psycopg")
    with MetadataDB(url.render_as_string(hide_password=False)) as db:
        assert db.current_revision() == HEAD


def test_sqlite_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "metadata.db"
    with MetadataDB(path) as db, db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30_000
    assert path.is_file()
    assert Path(f"{path}.migrate.lock").exists()
    with MetadataDB(f"sqlite:///{path}") as db:
        assert db.url == f"sqlite+pysqlite:///{path}"
        assert db.current_revision() == HEAD


def test_sqlite_writers_take_the_lock_up_front(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    with MetadataDB(path) as db, db.transaction() as conn:
        db.next_value(conn, "x")
        other = sqlite3.connect(path, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            assert other.execute("SELECT count(*) FROM counters").fetchone() == (0,)
        finally:
            other.close()


def test_in_memory_database() -> None:
    with MetadataDB("sqlite://") as db:
        assert db.dialect == "sqlite"
        assert db.current_revision() == HEAD
        assert db.run_in_transaction(lambda conn: db.next_value(conn, "m")) == 1
        assert db.run_in_transaction(lambda conn: db.next_value(conn, "m")) == 2


class _FakeDriverError(Exception):
    sqlstate = "40001"


def test_run_in_transaction_retries_serialization_failures() -> None:
    calls: list[int] = []

    def _flaky(conn: sa.Connection) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise exc.OperationalError("UPDATE ...", {}, _FakeDriverError("could not serialize"))
        return 7

    with MetadataDB("sqlite://") as db:
        assert db.run_in_transaction(_flaky, retries=5) == 7
        assert len(calls) == 3
        calls.clear()
        with pytest.raises(errors.Conflict, match="after 2 attempts"):
            db.run_in_transaction(_flaky, retries=1)
        with pytest.raises(errors.InvalidArgument, match="retries"):
            db.run_in_transaction(_flaky, retries=-1)
        with pytest.raises(errors.InvalidArgument, match="counter name"), db.transaction() as c:
            db.next_value(c, "")


@pytest.mark.parametrize(
    ("value", "error", "named"),
    [
        ("mysql://user:secret@host/db", errors.InvalidArgument, "mysql://user:***@host/db"),
        ("postgresql+psycopg2://u@h/db", errors.InvalidArgument, "postgresql+psycopg2"),
        ("", errors.InvalidArgument, "empty"),
        (42, errors.InvalidArgument, "42"),
    ],
)
def test_bad_urls(value: object, error: type[Exception], named: str) -> None:
    with pytest.raises(error) as info:
        MetadataDB(value)  # type: ignore[arg-type]
    assert named in str(info.value)
    assert "secret" not in str(info.value)


def test_folder_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(errors.StorageError, match="is a folder") as info:
        MetadataDB(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_corrupt_file_is_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    path.write_bytes(b"this is not a sqlite database" * 200)
    with pytest.raises(errors.StorageError) as info:
        MetadataDB(path)
    assert str(path) in str(info.value)


def test_unreachable_server_is_storage_error() -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://user:secret@127.0.0.1:{port}/nothing"
    with pytest.raises(errors.StorageError) as info:
        MetadataDB(url)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "secret" not in message
    assert "***" in message


def test_default_url_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_metadata_url(tmp_path) == str(tmp_path / ".ferrostore" / "metadata.db")
    monkeypatch.delenv("FERROSTORE_METADATA_URL", raising=False)
    with MetadataDB.from_env(tmp_path) as db:
        assert db.url.endswith("/.ferrostore/metadata.db")
    assert (tmp_path / ".ferrostore" / "metadata.db").is_file()
    other = tmp_path / "elsewhere.db"
    monkeypatch.setenv("FERROSTORE_METADATA_URL", f"sqlite:///{other}")
    with MetadataDB.from_env(tmp_path) as db:
        assert db.url == f"sqlite+pysqlite:///{other}"
    assert other.is_file()


_BEFORE_RUN_DATA_BY_RUN = "0006_stack_state"


@contextlib.contextmanager
def _open_at(url: str, revision: str) -> Iterator[MetadataDB]:
    """Open a new database created at an older schema revision."""
    from alembic import command

    from ferrostore.metadata import db as db_module

    upgrade = command.upgrade
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db_module, "_head_revision", lambda: revision)
        patch.setattr(command, "upgrade", lambda config, _: upgrade(config, revision))
        with MetadataDB(url) as db:
            assert db.current_revision() == revision
            yield db


def _run_data(db: MetadataDB) -> dict[str, list[tuple[object, ...]]]:
    with db.transaction(readonly=True) as conn:
        return {
            table: sorted(tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}")))
            for table in ("run_params", "run_tags", "run_latest_metrics", "run_metrics")
        }


def _index_columns(db: MetadataDB, table: str) -> list[str]:
    (index,) = [
        ix
        for ix in sa.inspect(db.engine).get_indexes(table)
        if ix["name"] == f"ix_{table}_key_value"
    ]
    return list(index["column_names"])


def test_upgrade_keys_run_data_by_run_and_keeps_it(metadata_url: str) -> None:
    runs = [uuid.uuid4().hex for _ in range(3)]
    with _open_at(metadata_url, _BEFORE_RUN_DATA_BY_RUN) as old:
        with old.transaction() as conn:
            conn.execute(
                sa.insert(tables.experiments),
                [{"experiment_id": "7", "name": "e", "artifact_location": "a",
                  "lifecycle_stage": "active", "creation_time": 1, "last_update_time": 1}],
            )  # fmt: skip
            conn.execute(
                sa.insert(tables.runs),
                [{"run_id": r, "experiment_id": "7", "run_name": f"r{i}", "user_id": "u",
                  "status": "FINISHED", "start_time": i, "end_time": None,
                  "lifecycle_stage": "active", "artifact_uri": f"runs:/{r}"}
                 for i, r in enumerate(runs)],
            )  # fmt: skip
            for table in ("run_params", "run_tags"):
                conn.execute(
                    sa.text(f'INSERT INTO {table} (run_id, "key", value) VALUES (:r, :k, :v)'),
                    [{"r": r, "k": k, "v": f"{k}-{i} ✓"} for i, r in enumerate(runs)
                     for k in ("a", "b b", "")],
                )  # fmt: skip
            points = [
                {"r": r, "k": k, "v": v, "n": n, "t": 10 + i, "s": i}
                for i, r in enumerate(runs)
                for k, v, n in (("acc", 0.1 + i, False), ("nan", None, True), ("big", 1e308, False))
            ]
            for table in ("run_latest_metrics", "run_metrics"):
                conn.execute(
                    sa.text(
                        f'INSERT INTO {table} (run_id, "key", value, is_nan, "timestamp", step) '
                        "VALUES (:r, :k, :v, :n, :t, :s)"
                    ),
                    points,
                )
        before = _run_data(old)
    assert len(before["run_params"]) == 9 and len(before["run_latest_metrics"]) == 9

    with MetadataDB(metadata_url) as db:  # upgrades to head
        assert db.current_revision() == HEAD
        assert _run_data(db) == before
        assert _index_columns(db, "run_params") == ["key", "value", "run_id"]
        assert _index_columns(db, "run_tags") == ["key", "value", "run_id"]
        assert _index_columns(db, "run_latest_metrics") == ["key", "value", "is_nan", "run_id"]
        if db.dialect == "sqlite":
            with db.transaction(readonly=True) as conn:
                ddl = dict(conn.execute(sa.text("SELECT name, sql FROM sqlite_master")).all())
            for table in ("run_params", "run_tags", "run_latest_metrics"):
                assert "WITHOUT ROWID" in ddl[table] and "pk_" + table in ddl[table]
            assert "WITHOUT ROWID" not in ddl["run_metrics"]
        with db.transaction() as conn:  # keys and cascades still hold
            row = {"run_id": runs[0], "key": "a", "value": "again"}
            with pytest.raises(exc.IntegrityError), conn.begin_nested():
                conn.execute(sa.insert(tables.run_params), row)
            with pytest.raises(exc.IntegrityError), conn.begin_nested():
                conn.execute(sa.insert(tables.run_tags), {**row, "run_id": "no-such-run"})
            conn.execute(sa.delete(tables.runs).where(tables.runs.c.run_id == runs[0]))
        after_delete = _run_data(db)
        assert all(runs[0] not in row for rows in after_delete.values() for row in rows)
        assert len(after_delete["run_latest_metrics"]) == 6


def test_downgrade_from_run_data_by_run_keeps_the_data(metadata_url: str) -> None:
    from alembic import command

    from ferrostore.metadata.db import _alembic_config

    with MetadataDB(metadata_url) as db:
        run = uuid.uuid4().hex
        with db.transaction() as conn:
            conn.execute(
                sa.insert(tables.experiments),
                {"experiment_id": "7", "name": "e", "artifact_location": "a",
                 "lifecycle_stage": "active", "creation_time": 1, "last_update_time": 1},
            )  # fmt: skip
            conn.execute(
                sa.insert(tables.runs),
                {"run_id": run, "experiment_id": "7", "run_name": "r", "user_id": "u",
                 "status": "FINISHED", "start_time": 1, "end_time": None,
                 "lifecycle_stage": "active", "artifact_uri": "runs:/r"},
            )  # fmt: skip
            conn.execute(sa.insert(tables.run_params), {"run_id": run, "key": "k", "value": "v"})
            conn.execute(
                sa.insert(tables.run_latest_metrics),
                {"run_id": run, "key": "m", "value": 0.5, "is_nan": False, "timestamp": 1,
                 "step": 0},
            )  # fmt: skip
        before = _run_data(db)
        with db.engine.connect() as conn:
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, _BEFORE_RUN_DATA_BY_RUN)
            conn.commit()
        assert db.current_revision() == _BEFORE_RUN_DATA_BY_RUN
        assert _run_data(db) == before
        assert _index_columns(db, "run_latest_metrics") == ["key", "value"]
        if db.dialect == "sqlite":
            with db.transaction(readonly=True) as conn:
                ddl = conn.execute(
                    sa.text("SELECT sql FROM sqlite_master WHERE name = 'run_params'")
                ).scalar_one()
            assert "WITHOUT ROWID" not in ddl
    with MetadataDB(metadata_url) as db:  # and up again
        assert db.current_revision() == HEAD
        assert _run_data(db) == before
