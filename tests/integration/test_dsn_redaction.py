"""A real server refusing a connection whose URL carries a password: the CLI line, the
worker's log and the reload machinery's log never show it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg import conninfo

from workbench.errors import StorageError
from workbench.pipeline.reload import HotReload
from workbench.storage import Listener, connect

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Pw0rd-s3cr3t-x9"


@pytest.fixture
def refused_dsn(pg_server: str) -> str:
    """A well-formed URL with a password, to a database that does not exist."""
    params = conninfo.conninfo_to_dict(pg_server)
    host, port = params.get("host") or "127.0.0.1", params.get("port") or "5432"
    user = params.get("user") or "postgres"
    return f"postgresql://{user}:{PASSWORD}@{host}:{port}/no_such_db_for_redaction"


def test_connection_failures_never_show_the_password(refused_dsn: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    for attempt in (lambda: connect(refused_dsn), lambda: Listener(refused_dsn)):
        with pytest.raises(StorageError) as info:
            attempt()
        assert "no_such_db_for_redaction" in str(info.value)  # the reason is kept
        logging.getLogger("workbench.test").error("failed", exc_info=info.value)
        assert PASSWORD not in str(info.value)
    with pytest.raises(StorageError):
        HotReload(refused_dsn, ROOT / "rules").initial()
    assert caplog.text and PASSWORD not in caplog.text


def test_the_cli_never_shows_the_password(refused_dsn: str, tmp_path: Path) -> None:
    for args in (["db", "status"], ["rules", "status"]):
        out = subprocess.run(
            [sys.executable, "-m", "workbench", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(ROOT),
                "WORKBENCH_DATABASE_URL": refused_dsn,
                "WORKBENCH_LOG_LEVEL": "DEBUG",
            },
        )
        assert out.returncode == 1, out.stderr
        assert PASSWORD not in out.stdout + out.stderr
        assert "error: cannot connect to PostgreSQL" in out.stderr, out.stderr
