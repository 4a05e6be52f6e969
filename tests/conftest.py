"""Shared fixtures: a real PostgreSQL server and a fresh metadata database per test."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_URL_ENV = "FERROSTORE_TEST_POSTGRES_URL"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find_postgres_bin() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if os.access(Path(bindir, "initdb"), os.X_OK) and os.access(
            Path(bindir, "pg_ctl"), os.X_OK
        ):
            return Path(bindir)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).parent
    return None


def _psycopg_url(url: str) -> str:
    """Return a URL libpq understands (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """Yield an admin URL of a PostgreSQL server: the env one, or a throwaway local cluster."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 not installed: pip install psycopg")
    external = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if external:
        yield _psycopg_url(external)
        return

    bindir = _find_postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed: apt-get install postgresql")

    as_root = os.geteuid() == 0
    prefix: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
    workdir = Path(tempfile.mkdtemp(prefix="ferrostore-pg-"))
    datadir, sockdir, logfile = workdir / "data", workdir / "sock", workdir / "server.log"
    sockdir.mkdir()
    if as_root:
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(sockdir, "postgres", "postgres")
    port = _free_port()
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(datadir)]
    started = False
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = (
            f"-k {sockdir} -c listen_addresses=127.0.0.1 -p {port} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            [*pg_ctl, "-o", options, "-l", str(logfile), "-w", "-t", "60", "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        started = True
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT 1")
        yield url
    except subprocess.CalledProcessError as err:
        log = logfile.read_text(errors="replace") if logfile.exists() else ""
        pytest.fail(f"could not start PostgreSQL: {err}\n{err.stderr!r}\n{log}")
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_database_url(postgres_server_url: str) -> Iterator[str]:
    """Yield the URL of a new, empty PostgreSQL database, dropped after the test."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"ferrostore_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_server_url).set(drivername="postgresql", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with (
            psycopg.connect(postgres_server_url, autocommit=True) as admin,
            contextlib.suppress(psycopg.Error),
        ):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty metadata database on each backend: a SQLite file or a PostgreSQL db."""
    if request.param == "sqlite":
        return str(tmp_path / "meta" / "metadata.db")
    return str(request.getfixturevalue("postgres_database_url"))


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep artifacts of SQL-URL tracking stores out of the working directory."""
    monkeypatch.setenv("FERROSTORE_ARTIFACT_ROOT", str(tmp_path_factory.mktemp("artifacts")))
