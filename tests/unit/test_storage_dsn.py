"""A database URL's password never reaches a message or a log: redaction, and the failure
paths of a DSN libpq cannot parse (it quotes tokens of it back, password included)."""

from __future__ import annotations

import doctest
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import workbench.storage.dsn as dsn_module
from workbench.errors import StorageError
from workbench.storage.connection import connect, describe
from workbench.storage.dsn import redact, reveals, scrub, secrets_of

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Pw0rd-s3cr%zzet"  # '%zz' is an invalid percent escape: libpq echoes the token

# DSNs libpq refuses to parse, each with the password in a place the refusal may quote.
INVALID = [
    f"postgresql://fraud:{PASSWORD}@127.0.0.1:5432/wb",  # invalid percent-encoded token
    f"postgresql://fraud:{PASSWORD}@[::1/wb",  # the whole URL is quoted back
    f"postgresql://fraud@127.0.0.1/wb?password={PASSWORD}&bogus=1",
    f"host=127.0.0.1 user=fraud password={PASSWORD} dbname",  # missing "=" after "dbname"
    f"host=127.0.0.1 user=fraud password='{PASSWORD}",  # unterminated quoted string
    f"host=127.0.0.1 password {PASSWORD}",  # missing "=" after "password" ...
]


def test_doctests() -> None:
    assert doctest.testmod(dsn_module).failed == 0


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@db/wb", "postgresql://u:***@db/wb"),
        ("postgres://u:p%40ss@db:5433/wb", "postgres://u:***@db:5433/wb"),
        ("postgresql://u:p@ss@db/wb", "postgresql://u:***@db/wb"),  # an unencoded '@'
        (
            "postgresql://u@db/wb?password=pw&sslmode=require",
            "postgresql://u@db/wb?password=***&sslmode=require",
        ),
        ("host=db password=pw user=u", "host=db password=*** user=u"),
        ("host=db password = 'a \\' b' user=u", "host=db password = *** user=u"),
        ("postgresql://u@db/wb", "postgresql://u@db/wb"),
        ("host=db user=u", "host=db user=u"),
    ],
)
def test_redact_masks_the_password_and_keeps_the_rest(dsn: str, shown: str) -> None:
    assert redact(dsn) == shown


def test_the_decoded_password_is_masked_too() -> None:
    dsn = "postgresql://u:p%40ss%21@db/wb"
    assert set(secrets_of(dsn)) >= {"p%40ss%21", "p@ss!"}
    assert scrub("auth failed for p@ss! and p%40ss%21", dsn) == "auth failed for *** and ***"
    assert not reveals("nothing here", dsn) and reveals("x p@ss! y", dsn)


@pytest.mark.parametrize("dsn", INVALID)
def test_an_invalid_dsn_error_never_shows_the_password(dsn: str, caplog) -> None:
    with pytest.raises(StorageError) as info:
        connect(dsn, connect_timeout=2)
    message = str(info.value)
    assert PASSWORD not in message and "s3cr" not in message, message
    assert message.startswith(("invalid PostgreSQL DSN", "cannot connect to PostgreSQL"))
    # The log keeps the traceback: the driver's error must not ride along as its cause.
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("workbench.test").error("failed", exc_info=info.value)
    assert "s3cr" not in caplog.text and "StorageError" in caplog.text
    assert "s3cr" not in describe(dsn)


@pytest.mark.parametrize("dsn", INVALID[:2] + INVALID[3:4])
def test_the_cli_line_and_its_debug_log_never_show_the_password(dsn: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "workbench", "db", "status"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "WORKBENCH_DATABASE_URL": dsn,
            "WORKBENCH_LOG_LEVEL": "DEBUG",  # the traceback is logged too
        },
    )
    assert out.returncode == 1, out.stderr
    assert "s3cr" not in out.stderr + out.stdout, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "PostgreSQL" in errors[0], out.stderr
