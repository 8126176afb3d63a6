"""``workbench up``: the one-command main job.

The database (embedded unless one is configured) is started and migrated here, and the
components' least-privilege roles are made (``workbench db roles``): the worker connects as
``workbench_pipeline``, the dashboard as ``workbench_dashboard`` and its rule editor publishes
as ``workbench_publisher`` (a ``WORKBENCH_<COMPONENT>_DATABASE_URL`` setting wins). The pipeline
runs as ``workbench run`` in a child process (so the dashboard never waits on scoring, and a
crash of either is visible on its own); the dashboard is served from this process. Ctrl-C or
SIGTERM stops both; when the worker stops on its own, ``up`` stops too and returns its code.

One ``up`` per directory: it holds an exclusive ``flock`` on ``.workbench/up.pid`` (which
names its pid) while it runs, so a second one refuses with that pid, and a SIGKILLed one
leaves no stale lock (the kernel drops it). The worker child gets SIGTERM when ``up`` dies
(Linux ``PR_SET_PDEATHSIG``), so a killed ``up`` leaves no worker behind either.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from workbench.auth.login_config import LoginConfig, check_bind
from workbench.errors import ConfigError, StorageError
from workbench.pipeline.database import ROOT, component_roles, database
from workbench.settings import Settings
from workbench.storage.dsn import public_url

log = logging.getLogger(__name__)

WORKER_STOP_S = 15.0  # how long the worker may take to finish its batch after SIGINT
BATCH_SECONDS = 0.5  # batches of at most this many seconds of the source rate: a live screen


def up(settings: Settings, *, duration: float | None = None, no_auth: bool = False) -> int:
    from tornado.ioloop import PeriodicCallback

    from workbench.dashboard.server import serve, stop_hub, url_of

    logging.getLogger("bokeh").setLevel(logging.WARNING)  # one line per websocket is noise
    login = LoginConfig.from_settings(settings)
    # refused here, before a database is started or a worker spawned (serve checks again)
    check_bind(settings.dashboard_address, login.mode, no_auth=no_auth, warn=False)
    with only_up(ROOT), database(settings, root=ROOT) as dsn:
        urls = _component_urls(settings, dsn)
        if urls["dashboard"] != dsn:
            # The owner's DSN holds PGPASSWORD's value already (settings.libpq); left in the
            # environment, libpq would send it for the roles too, before their password file.
            os.environ.pop("PGPASSWORD", None)
        worker = _start_worker(settings, urls["pipeline"])
        server = serve(
            urls["dashboard"],
            address=settings.dashboard_address,
            port=settings.dashboard_port,
            publisher_dsn=urls["publisher"],
            login=login,
            no_auth=no_auth,
        )
        loop = server.io_loop
        outcome = {"code": 0}

        def stop(code: int = 0) -> None:
            outcome["code"] = outcome["code"] or code
            loop.add_callback(loop.stop)

        def watch_worker() -> None:
            code = worker.poll()
            if code is not None:
                print(f"\npipeline worker stopped (exit code {code})", flush=True)
                stop(code)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.asyncio_loop.add_signal_handler(sig, stop)
        PeriodicCallback(watch_worker, 500).start()
        if duration is not None:
            loop.call_later(duration, stop)
        print(
            f"dashboard: {url_of(server, settings.dashboard_address)}  "
            f"database: {public_url(dsn)}  "
            f"(rules from {settings.rules_dir}/; Ctrl-C stops)",
            flush=True,
        )
        try:
            loop.start()
        finally:
            server.stop()
            stop_hub()
            code = _stop_worker(worker)
    return outcome["code"] or (code if code not in (None, -signal.SIGINT) else 0)


def _component_urls(settings: Settings, admin_dsn: str) -> dict[str, str]:
    """The DSN of each component: its setting, else its role (made now), else — when this
    connection may not create roles (a managed server) — the owner's DSN, with a warning."""
    from workbench.storage.roles import ROLES, dsns

    try:
        made = dsns(component_roles(settings, admin_dsn, root=ROOT))
    except StorageError as exc:
        log.warning(
            "least-privilege roles not made (%s): every component connects as the database "
            "URL's user; run `workbench db roles` as a user allowed to CREATE ROLE",
            exc,
        )
        made = dict.fromkeys(ROLES, admin_dsn)
    return {c: getattr(settings, f"{c}_database_url") or made[c] for c in ROLES}


def _start_worker(settings: Settings, dsn: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "workbench", "run", "--rules", str(settings.rules_dir)]
    if settings.rate:
        command += ["--rate", str(settings.rate)]
    rows = min(settings.batch_rows, max(1, int(settings.rate * BATCH_SECONDS)))
    command += ["--batch-rows", str(rows)]
    # The worker's own role; its DSN names the password file, it holds no password.
    env = dict(os.environ, WORKBENCH_PIPELINE_DATABASE_URL=dsn)
    return subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)


@contextlib.contextmanager
def only_up(root: Path) -> Iterator[None]:
    """Hold ``root/up.pid`` exclusively for the block; refuse if another process holds it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fh = open(root / "up.pid", "a+")  # noqa: SIM115 (held for the whole block)
    except OSError as exc:
        raise ConfigError(f"cannot create {root / 'up.pid'}: {exc.strerror}") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "unknown"
            raise ConfigError(
                f"workbench up is already running in this directory (pid {pid}); "
                "stop it first, or run from another directory"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()


def _die_with_parent() -> None:
    """In the forked worker: get SIGTERM when ``up`` dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_worker(worker: subprocess.Popen) -> int | None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return worker.returncode
