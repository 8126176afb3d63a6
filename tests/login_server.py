"""The documented ``panel serve`` command with the workbench login, as the integration and
browser tests start it (the README's, with a free port instead of 5006)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = (
    "panel serve workbench/dashboard/app.py --index app --setup workbench/dashboard/startup.py "
    "--address 127.0.0.1 --port {port} --allow-websocket-origin 127.0.0.1:{port} "
    "--allow-websocket-origin localhost:{port} --auth-module workbench/dashboard/auth.py"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port: int) -> list[str]:
    """The documented command line, run by this interpreter's ``panel``."""
    words = DOCUMENTED.format(port=port).split()
    assert words[0] == "panel"
    return [sys.executable, "-m", "panel", *words[1:]]


def environment(dsn: str, users: Path) -> dict[str, str]:
    """This environment without WORKBENCH_*/PG* settings, plus the database and the
    credentials file of the test (the cookie secret is created next to it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "PG"))}
    env.update(WORKBENCH_DATABASE_URL=dsn, WORKBENCH_AUTH_USERS_FILE=str(users))
    env.update(PYTHONPATH=str(REPO), WORKBENCH_RULES_DIR=str(REPO / "rules"))
    return env
