"""The credentials file: argon2 hashes, mode 0600, atomic writes, refusals, no enumeration by
timing; the cookie secret; the login configuration and the bind check."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.auth.login_config import LoginConfig, check_bind, is_loopback, parse_roles
from workbench.auth.private import cookie_secret
from workbench.auth.roles import Role
from workbench.auth.users import UsersFile
from workbench.errors import ConfigError
from workbench.settings import ROLE_LABELS, Settings

PASSWORD = "correct horse battery"


@pytest.fixture
def users(tmp_path: Path) -> UsersFile:
    return UsersFile(tmp_path / "state" / "users.json")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_password_is_stored_as_an_argon2id_hash_in_a_private_file(users: UsersFile) -> None:
    users.add("alice", PASSWORD, "analyst")
    text = users.path.read_text()
    entry = json.loads(text)["users"]["alice"]
    assert PASSWORD not in text
    assert entry["hash"].startswith("$argon2id$")
    assert entry["role"] == "analyst" and entry["created"]
    assert _mode(users.path) == 0o600 and _mode(users.path.parent) == 0o700
    # the same password hashes differently for another user (a salt per hash)
    users.add("bob", PASSWORD, "viewer")
    assert json.loads(users.path.read_text())["users"]["bob"]["hash"] != entry["hash"]


def test_verify_accepts_the_password_only(users: UsersFile) -> None:
    users.add("alice", PASSWORD, Role.ADMIN)
    assert users.verify("alice", PASSWORD).role is Role.ADMIN
    for name, password in [
        ("alice", PASSWORD + " "),
        ("alice", PASSWORD.upper()),
        ("alice", ""),
        ("Alice", PASSWORD),
        ("bob", PASSWORD),
        ("alice", "x" * 5000),
    ]:
        assert users.verify(name, password) is None, (name, password[:20])


def test_an_unknown_user_costs_a_hash_verify_too(users: UsersFile) -> None:
    """No user enumeration by timing: refusing 'nobody' takes as long as a wrong password."""
    users.add("alice", PASSWORD, "viewer")
    users.verify("nobody", "warm up the dummy hash")

    def timed(name: str) -> float:
        started = time.perf_counter()
        for _ in range(5):
            assert users.verify(name, "wrong password") is None
        return time.perf_counter() - started

    known, unknown = min(timed("alice") for _ in range(2)), min(timed("nobody") for _ in range(2))
    assert unknown > 0.5 * known, (known, unknown)


@pytest.mark.parametrize(
    "name",
    ["", "a" * 65, "bob!", "<script>", "al ice", "../etc", "-rf", ".hidden", "é", "a\nb", "a=b"],
)
def test_invalid_user_names_are_refused(users: UsersFile, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid user name"):
        users.add(name, PASSWORD, "viewer")
    assert not users.path.exists()


def test_refusals_change_nothing(users: UsersFile) -> None:
    users.add("alice@x.org", PASSWORD, "analyst")
    before = users.path.read_bytes()
    with pytest.raises(ConfigError, match="exists already"):
        users.add("alice@x.org", PASSWORD, "admin")
    with pytest.raises(ConfigError, match="8 to 1024 characters"):
        users.add("bob", "short", "viewer")
    with pytest.raises(ConfigError, match="unknown role"):
        users.add("bob", PASSWORD, "root")
    with pytest.raises(ConfigError, match="no user"):
        users.remove("bob")
    with pytest.raises(ConfigError, match="no user"):
        users.set_role("bob", "admin")
    assert users.path.read_bytes() == before


def test_set_role_and_remove(users: UsersFile) -> None:
    users.add("alice", PASSWORD, "viewer")
    before, after = users.set_role("alice", "rule-author")
    assert (before.role, after.role) == (Role.VIEWER, Role.RULE_AUTHOR)
    assert users.get("alice").role is Role.RULE_AUTHOR
    assert users.remove("alice").name == "alice"
    assert users.get("alice") is None and not users
    assert users.verify("alice", PASSWORD) is None


def test_a_failing_audit_hook_leaves_the_file_as_it_was(users: UsersFile) -> None:
    """The CLI writes the audit row in the hook: no audit row, no change."""
    users.add("alice", PASSWORD, "viewer")
    before = users.path.read_bytes()

    def fail(_before, _after):
        raise ConfigError("audit trail unreachable")

    with pytest.raises(ConfigError, match="unreachable"):
        users.set_role("alice", "admin", audit=fail)
    with pytest.raises(ConfigError):
        users.remove("alice", audit=fail)
    with pytest.raises(ConfigError):
        users.add("bob", PASSWORD, "admin", audit=fail)
    assert users.path.read_bytes() == before
    assert sorted(p.name for p in users.path.parent.iterdir()) == ["users.json", "users.json.lock"]


def test_unsafe_or_foreign_files_are_refused(users: UsersFile) -> None:
    users.add("alice", PASSWORD, "viewer")
    os.chmod(users.path, 0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        users.verify("alice", PASSWORD)
    os.chmod(users.path, 0o600)
    users.path.write_text('{"alice": "plain text password"}')
    with pytest.raises(ConfigError, match="not a workbench credentials file"):
        users.get("alice")


def test_concurrent_adds_from_two_processes_are_both_kept(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    code = (
        "import sys; from workbench.auth.users import UsersFile\n"
        "for i in range(5): UsersFile(sys.argv[1]).add(f'{sys.argv[2]}{i}', 'password1', 'viewer')"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), prefix], env=os.environ)
        for prefix in ("a", "b")
    ]
    assert [p.wait(120) for p in procs] == [0, 0]
    assert len(UsersFile(path).users()) == 10


def test_the_cookie_secret_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / ".workbench" / "cookie_secret"
    secret = cookie_secret(path)
    assert len(secret) == 64 and _mode(path) == 0o600
    assert cookie_secret(path) == secret
    assert cookie_secret(tmp_path / "other") != secret
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="readable by other users"):
        cookie_secret(path)


def test_role_labels_of_the_settings_are_the_roles() -> None:
    assert tuple(r.label for r in Role) == ROLE_LABELS


def test_login_mode_follows_the_users_file_and_oauth(tmp_path: Path) -> None:
    env = {"WORKBENCH_AUTH_USERS_FILE": str(tmp_path / "users.json")}
    assert LoginConfig.from_settings(Settings.load(env)).mode is None
    UsersFile(tmp_path / "users.json").add("alice", PASSWORD, "viewer")
    assert LoginConfig.from_settings(Settings.load(env)).mode == "basic"
    with pytest.raises(ConfigError, match="needs WORKBENCH_AUTH_OAUTH_KEY"):
        LoginConfig.from_settings(Settings.load({**env, "WORKBENCH_AUTH_OAUTH_PROVIDER": "github"}))
    with pytest.raises(ConfigError, match="WORKBENCH_AUTH_OAUTH_EXTRA_PARAMS"):
        Settings.load({"WORKBENCH_AUTH_OAUTH_EXTRA_PARAMS": "[1]"})
    with pytest.raises(ConfigError, match="WORKBENCH_LOCAL_ROLE"):
        Settings.load({"WORKBENCH_LOCAL_ROLE": "root"})


def test_oauth_role_mapping() -> None:
    assert parse_roles(" a@x.org=admin , b@x.org = rule-author,") == {
        "a@x.org": Role.ADMIN,
        "b@x.org": Role.RULE_AUTHOR,
    }
    for bad, message in [
        ("a@x.org", "USER=ROLE"),
        ("a@x.org=root", "unknown role"),
        ("<b>=admin", "invalid user name"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_roles(bad)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_only_loopback_addresses_are_served_without_a_login(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback
    if loopback:
        check_bind(address, None, no_auth=False)
    else:
        with pytest.raises(ConfigError, match="without a login"):
            check_bind(address, None, no_auth=False)
        check_bind(address, "basic", no_auth=False)
        check_bind(address, "oauth", no_auth=False)


def test_no_auth_is_a_loud_exception(caplog: pytest.LogCaptureFixture) -> None:
    check_bind("0.0.0.0", None, no_auth=True)
    assert any(
        r.levelname == "WARNING" and "WITHOUT A LOGIN" in r.getMessage() for r in caplog.records
    )
