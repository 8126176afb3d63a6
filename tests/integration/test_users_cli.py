"""``workbench users`` against a real PostgreSQL (every change audited, or nothing changes),
and ``workbench up`` refusing a non-loopback address without a login."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.auth.users import UsersFile
from workbench.cli.main import main
from workbench.cli.run_cmd import check_up
from workbench.errors import ConfigError
from workbench.storage import audit, connect

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
UNREACHABLE = "postgresql://postgres@127.0.0.1:9/nothing?connect_timeout=2"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own (``.workbench/`` lands there), no WORKBENCH_* set."""
    for name in list(os.environ):
        if name.startswith(("WORKBENCH_", "PG")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _users(here: Path) -> UsersFile:
    return UsersFile(here / ".workbench" / "users.json")


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(list(argv))


def test_users_add_list_set_role_remove_are_audited(
    here: Path, db_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", db_dsn)
    assert (
        _run(
            monkeypatch,
            "users",
            "add",
            "alice",
            "--role",
            "analyst",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        == 0
    )
    assert _users(here).verify("alice", PASSWORD) is not None
    assert _run(monkeypatch, "users", "set-role", "alice", "--role", "admin") == 0
    capsys.readouterr()
    assert _run(monkeypatch, "users", "list") == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "admin" in listing and "argon2" not in listing
    assert _run(monkeypatch, "users", "remove", "alice") == 0
    assert _users(here).get("alice") is None

    with connect(db_dsn) as conn:
        rows = audit.recent(conn, 10, action="user.").sort_values("id")
    assert list(rows["action"]) == ["user.add", "user.set_role", "user.remove"]
    assert set(rows["provider"]) == {"cli"} and all(a.startswith("cli:") for a in rows["actor"])
    assert set(rows["object"]) == {"user:alice"}
    assert rows.iloc[1]["before"]["role"] == "analyst" and rows.iloc[1]["after"]["role"] == "admin"
    assert rows.iloc[0]["before"] is None and rows.iloc[2]["after"] is None
    assert "argon2" not in json.dumps([list(r) for r in rows[["before", "after"]].values])


def test_no_change_without_its_audit_row(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _users(here).add("bob", PASSWORD, "viewer")
    before = _users(here).path.read_bytes()
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", UNREACHABLE)
    assert (
        _run(
            monkeypatch,
            "users",
            "add",
            "carol",
            "--role",
            "admin",
            "--password-stdin",
            stdin=PASSWORD,
        )
        == 1
    )
    assert _run(monkeypatch, "users", "set-role", "bob", "--role", "admin") == 1
    assert _run(monkeypatch, "users", "remove", "bob") == 1
    assert _users(here).path.read_bytes() == before
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)


def test_passwords_never_come_from_the_command_line(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", UNREACHABLE)
    with pytest.raises(SystemExit) as exit_:
        _run(monkeypatch, "users", "add", "bob", "--role", "viewer", "--password", PASSWORD)
    assert exit_.value.code == 2
    # no terminal to prompt on and no --password-stdin: refused, before any database
    assert _run(monkeypatch, "users", "add", "bob", "--role", "viewer", stdin=PASSWORD) == 1
    assert "--password-stdin" in capsys.readouterr().err
    assert (
        _run(
            monkeypatch,
            "users",
            "add",
            "bob",
            "--role",
            "viewer",
            "--password-stdin",
            stdin="short\n",
        )
        == 1
    )
    for argv in (
        ["users", "add", "<b>", "--role", "viewer"],
        ["users", "add", "bob", "--role", "root"],
    ):
        with pytest.raises(SystemExit) as exit_:
            _run(monkeypatch, *argv)
        assert exit_.value.code == 2
    assert not _users(here).path.exists()


def test_up_refuses_a_public_address_without_a_login(here: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "PG"))}
    env["WORKBENCH_DATABASE_URL"] = UNREACHABLE  # nothing may be started anyway
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    for extra_env, argv in [
        ({}, ["--address", "0.0.0.0"]),
        ({"WORKBENCH_DASHBOARD_ADDRESS": "0.0.0.0"}, []),
        ({}, ["--address", "192.0.2.10"]),
    ]:
        out = subprocess.run(
            [sys.executable, "-m", "workbench", "up", "--duration", "1", *argv],
            env={**env, **extra_env},
            cwd=here,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "without a login" in lines[0], out.stderr
        assert "--no-auth" in lines[0]
    assert not (here / ".workbench").exists()  # no lock, no database, no worker


def test_up_accepts_a_public_address_with_a_login_or_no_auth(
    here: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = argparse.Namespace(address="0.0.0.0", no_auth=False)
    with pytest.raises(ConfigError, match="without a login"):
        check_up(args)
    check_up(argparse.Namespace(address="0.0.0.0", no_auth=True))
    check_up(argparse.Namespace(address="127.0.0.1", no_auth=False))
    _users(here).add("alice", PASSWORD, "admin")
    check_up(args)
