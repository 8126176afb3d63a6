"""``workbench lab``: JupyterLab on the workbench's database.

The database is found (or the embedded one attached to, or started) exactly as for every other
command, migrated, and handed to JupyterLab's kernels in ``WORKBENCH_DATABASE_URL``, so the
notebooks' ``workbench.analysis.database_url()`` reaches it without configuration. JupyterLab
listens on 127.0.0.1 only, behind a token; its URL (token included) is printed once it answers.
Ctrl-C or SIGTERM stops it, and the embedded server is released like any command's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from workbench.cli.up_cmd import _die_with_parent
from workbench.errors import ConfigError
from workbench.pipeline.database import database
from workbench.settings import Settings
from workbench.storage.dsn import public_url

ADDRESS = "127.0.0.1"  # a token guards it, but a notebook server runs code: local only
START_S = 120.0  # JupyterLab's first start builds its settings on a busy machine
STOP_S = 15.0
ASSET_SUFFIXES = (".css", ".woff", ".woff2", ".ttf", ".svg", ".png")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab",
        help="Start JupyterLab on 127.0.0.1 with the notebooks, on the workbench's database.",
    )
    p.add_argument(
        "--port", type=int, default=8888, help="Port to listen on (0: any free port; 8888)."
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="Folder JupyterLab shows (default: ./notebooks if it exists, else .).",
    )
    p.add_argument(
        "--token", default=None, help="Access token (default: a new random one, printed)."
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # Every argument is checked before the database is touched.
    if importlib.util.find_spec("jupyterlab") is None:
        raise ConfigError(
            "JupyterLab is not installed: pip install 'fraud-workbench[jupyter]' "
            "(or pip install jupyterlab)"
        )
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {args.port}")
    folder = args.dir or (Path("notebooks") if Path("notebooks").is_dir() else Path("."))
    if not folder.is_dir():
        raise ConfigError(f"--dir {folder} is not a folder")
    port = args.port or _free_port()
    token = args.token or secrets.token_hex(24)

    with database(settings) as dsn, tempfile.TemporaryDirectory(prefix="workbench-lab-") as tmp:
        static, cdn_root = _panel_assets(Path(tmp), f"http://{ADDRESS}:{port}/static/")
        env = dict(os.environ, WORKBENCH_DATABASE_URL=dsn, PANEL_CDN_ROOT=cdn_root)
        lab = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                f"--ServerApp.ip={ADDRESS}",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",  # the printed port is the port, or it fails
                f"--ServerApp.root_dir={folder.resolve()}",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.extra_static_paths={static}",
                # Jupyter refuses root unless told; containers and CI run as root.
                *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        stopping = {"signal": False}

        def stop(signum: int, frame: object) -> None:
            stopping["signal"] = True
            if lab.poll() is None:
                lab.send_signal(signal.SIGTERM)

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            url = f"http://{ADDRESS}:{port}/lab?token={token}"
            if _wait_ready(lab, port, token):
                print(
                    f"JupyterLab: {url}  database: {public_url(dsn)}  (Ctrl-C stops)",
                    flush=True,
                )
            while lab.poll() is None:
                time.sleep(0.5)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            _stop(lab)
    if lab.returncode and not stopping["signal"]:
        raise ConfigError(f"JupyterLab exited with code {lab.returncode} (its log is above)")
    return 0


def _panel_assets(tmp: Path, static_url: str) -> tuple[Path, str]:
    """A static folder for JupyterLab that serves Panel's own assets, and the
    ``PANEL_CDN_ROOT`` that points the kernels' Panel at it.

    In a notebook with ``pn.extension(inline=True)`` Panel inlines what it renders first, but
    the stylesheets of models it sends later over the comm (a table, a Markdown pane, a
    loading spinner, the theme) still name Panel's CDN: offline, the live view loses its
    styles and the console fills with failed requests. Served by JupyterLab itself (its
    ``/static/`` folder, public like the rest of its assets), they load from 127.0.0.1.
    The folder is ``extra_static_paths``; returns it and the URL to use as the CDN root.
    """
    from panel.config import config
    from panel.io.resources import CDN_DIST, DIST_DIR

    versioned = CDN_DIST[len(config.cdn_root) :]  # "<panel version>/dist/"
    # A copy, not a symlink: Jupyter serves no file that resolves outside its static folder.
    # Only stylesheets and their fonts: the JavaScript is inlined by pn.extension(inline=True).
    shutil.copytree(
        DIST_DIR,
        tmp / versioned,
        ignore=lambda folder, names: [
            n for n in names if not (Path(folder, n).is_dir() or n.endswith(ASSET_SUFFIXES))
        ],
    )
    return tmp, static_url  # absolute: Panel inlines and rewrites only URLs it sees as a CDN


def _wait_ready(lab: subprocess.Popen, port: int, token: str) -> bool:
    """Until JupyterLab answers its status API; False if it exited first."""
    deadline = time.monotonic() + START_S
    while lab.poll() is None and time.monotonic() < deadline:
        try:
            status = f"http://{ADDRESS}:{port}/api/status?token={token}"
            with urllib.request.urlopen(status, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return lab.poll() is None


def _stop(lab: subprocess.Popen) -> None:
    if lab.poll() is None:
        lab.send_signal(signal.SIGTERM)
        try:
            lab.wait(STOP_S)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]
