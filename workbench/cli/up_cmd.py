"""``workbench up``: the one-command main job.

The database (embedded unless one is configured) is started and migrated here; the pipeline
runs as ``workbench run`` in a child process (so the dashboard never waits on scoring, and a
crash of either is visible on its own); the dashboard is served from this process. Ctrl-C or
SIGTERM stops both; when the worker stops on its own, ``up`` stops too and returns its code.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

from workbench.pipeline.database import database
from workbench.settings import Settings

WORKER_STOP_S = 15.0  # how long the worker may take to finish its batch after SIGINT
BATCH_SECONDS = 0.5  # batches of at most this many seconds of the source rate: a live screen


def up(settings: Settings, *, duration: float | None = None) -> int:
    from tornado.ioloop import PeriodicCallback

    from workbench.dashboard.server import serve, stop_hub, url_of

    logging.getLogger("bokeh").setLevel(logging.WARNING)  # one line per websocket is noise
    with database(settings) as dsn:
        worker = _start_worker(settings, dsn)
        server = serve(dsn, address=settings.dashboard_address, port=settings.dashboard_port)
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


def _start_worker(settings: Settings, dsn: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "workbench", "run", "--rules", str(settings.rules_dir)]
    if settings.rate:
        command += ["--rate", str(settings.rate)]
    rows = min(settings.batch_rows, max(1, int(settings.rate * BATCH_SECONDS)))
    command += ["--batch-rows", str(rows)]
    env = dict(os.environ, WORKBENCH_DATABASE_URL=dsn)
    return subprocess.Popen(command, env=env)


def _stop_worker(worker: subprocess.Popen) -> int | None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return worker.returncode
