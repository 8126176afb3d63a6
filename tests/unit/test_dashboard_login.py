"""What reaches Panel from the login configuration (basic and OAuth), the websocket origins,
and the login page and user badge being escaped.

No identity provider is reachable from the test machine, so the OAuth flow itself is not
exercised: these tests check which ``pn.serve`` arguments and Panel settings the
configuration produces (in a subprocess: Panel's config is process-global).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import panel as pn
import pytest

from workbench.auth.login_config import LoginConfig
from workbench.auth.roles import Identity, Role
from workbench.auth.users import UsersFile
from workbench.dashboard import login
from workbench.dashboard.login import user_badge
from workbench.dashboard.login_handlers import Throttle, login_page
from workbench.dashboard.server import websocket_origins
from workbench.settings import Settings

PROBE = """
import json, panel as pn
from workbench.dashboard.login import setup
kwargs = setup()
server = pn.serve({"/": lambda: pn.pane.Markdown("x")}, port=0, address="127.0.0.1",
                  start=False, show=False, websocket_origin=["127.0.0.1:1"], **kwargs)
provider = server._tornado.auth_provider
print(json.dumps({
    "kwargs": sorted(kwargs),
    "provider": type(provider).__name__,
    "login_url": provider.login_url,
    "server_secret": server._tornado.settings.get("cookie_secret"),
    "oauth_provider": pn.config.oauth_provider,
    "oauth_key": pn.config.oauth_key,
    "oauth_secret": pn.config.oauth_secret,
    "oauth_redirect_uri": pn.config.oauth_redirect_uri,
    "oauth_extra_params": pn.config.oauth_extra_params,
}))
"""


def _probe(tmp_path: Path, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    environ.update(WORKBENCH_AUTH_USERS_FILE=str(tmp_path / "users.json"), **env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_oauth_settings_reach_panel(tmp_path: Path) -> None:
    seen = _probe(
        tmp_path,
        WORKBENCH_AUTH_OAUTH_PROVIDER="generic",
        WORKBENCH_AUTH_OAUTH_KEY="client-id",
        WORKBENCH_AUTH_OAUTH_SECRET="client-secret",
        WORKBENCH_AUTH_OAUTH_REDIRECT_URI="https://wb.example/login",
        WORKBENCH_AUTH_OAUTH_EXTRA_PARAMS='{"TOKEN_URL": "https://idp.example/token"}',
    )
    assert seen["provider"] == "OAuthProvider"
    assert (seen["oauth_provider"], seen["oauth_key"], seen["oauth_secret"]) == (
        "generic",
        "client-id",
        "client-secret",
    )
    assert seen["oauth_redirect_uri"] == "https://wb.example/login"
    assert seen["oauth_extra_params"] == {"TOKEN_URL": "https://idp.example/token"}
    secret = (tmp_path / "cookie_secret").read_text().strip()
    assert seen["server_secret"] == secret and len(secret) == 64


def test_basic_login_reaches_panel_with_the_persistent_secret(tmp_path: Path) -> None:
    UsersFile(tmp_path / "users.json").add("alice", "password1", "viewer")
    seen = _probe(tmp_path)
    assert seen["provider"] == "WorkbenchAuthProvider" and seen["login_url"] == "/login"
    assert seen["kwargs"] == ["auth_provider", "cookie_secret"]
    assert seen["server_secret"] == (tmp_path / "cookie_secret").read_text().strip()
    assert seen["oauth_provider"] is None
    assert _probe(tmp_path)["server_secret"] == seen["server_secret"]  # reused


def test_no_login_passes_nothing(tmp_path: Path) -> None:
    seen = _probe(tmp_path)
    assert seen["kwargs"] == [] and seen["provider"] == "NullAuth"
    assert not (tmp_path / "cookie_secret").exists()


def test_websocket_origins_are_the_served_host_and_port_only() -> None:
    assert websocket_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]
    assert websocket_origins("10.1.2.3", 80) == ["10.1.2.3:80"]
    wildcard = websocket_origins("0.0.0.0", 5006)
    assert "localhost:5006" in wildcard and all(o.endswith(":5006") for o in wildcard)
    assert not any(o.startswith(("*", "0.0.0.0")) for o in wildcard)


def test_the_login_page_is_self_contained_and_fixed() -> None:
    page = login_page("/login", failed=True)
    assert "Wrong user name or password." in page
    assert "http" not in page and "<script" not in page  # no CDN, no script
    assert "Wrong" not in login_page("/login", failed=False)
    assert "&lt;x&gt;" in login_page("/<x>", failed=False)


def test_the_user_badge_is_escaped() -> None:
    hostile = Identity("<img src=x onerror=alert(1)>", Role.ANALYST, provider="basic")
    badge = user_badge(hostile)
    assert "<img" not in badge and "&lt;img src=x onerror=alert(1)&gt; (analyst)" in badge
    assert "logout" in badge
    assert "logout" not in user_badge(Identity("local:me", Role.ADMIN, provider="local"))


def _as_user(monkeypatch, name):
    """The session's login name, as Panel would read it from the signed cookie."""
    monkeypatch.setattr(type(pn.state), "user", property(lambda self: name))


def test_session_identity_reads_the_role_from_the_file_each_time(tmp_path, monkeypatch) -> None:
    users = UsersFile(tmp_path / "users.json")
    users.add("alice", "password1", "analyst")
    settings = Settings.load({"WORKBENCH_AUTH_USERS_FILE": str(users.path)})
    monkeypatch.setattr(login, "_active", LoginConfig.from_settings(settings))
    _as_user(monkeypatch, "alice")
    first = login.session_identity()
    assert (first.user, first.role, first.provider) == ("alice", Role.ANALYST, "basic")
    users.set_role("alice", "viewer")
    assert login.session_identity().role is Role.VIEWER  # the next session sees the change
    users.remove("alice")
    with pytest.raises(login.LoginRefused):
        login.session_identity()


def test_session_identity_of_oauth_and_local_sessions(tmp_path, monkeypatch) -> None:
    oauth = Settings.load(
        {
            "WORKBENCH_AUTH_USERS_FILE": str(tmp_path / "users.json"),
            "WORKBENCH_AUTH_OAUTH_PROVIDER": "github",
            "WORKBENCH_AUTH_OAUTH_KEY": "k",
            "WORKBENCH_AUTH_OAUTH_SECRET": "s",
            "WORKBENCH_AUTH_OAUTH_ROLES": "boss@x.org=admin",
        }
    )
    monkeypatch.setattr(login, "_active", LoginConfig.from_settings(oauth))
    _as_user(monkeypatch, "boss@x.org")
    assert login.session_identity().role is Role.ADMIN
    _as_user(monkeypatch, "someone@y.org")
    identity = login.session_identity()
    assert (identity.role, identity.provider) == (Role.VIEWER, "oauth")

    local = Settings.load(
        {
            "WORKBENCH_AUTH_USERS_FILE": str(tmp_path / "none.json"),
            "WORKBENCH_LOCAL_ROLE": "analyst",
        }
    )
    monkeypatch.setattr(login, "_active", LoginConfig.from_settings(local))
    _as_user(monkeypatch, None)
    identity = login.session_identity()
    assert identity.provider == "local" and identity.role is Role.ANALYST
    assert identity.user.startswith("local:")


def test_an_address_with_many_failed_logins_is_throttled() -> None:
    now = [0.0]
    throttle = Throttle(limit=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert not throttle.blocked("10.0.0.1")
        throttle.record("10.0.0.1", ok=False)
    assert throttle.blocked("10.0.0.1") and not throttle.blocked("10.0.0.2")
    now[0] = 30.0
    assert throttle.blocked("10.0.0.1")
    now[0] = 61.0  # the failures left the window
    assert not throttle.blocked("10.0.0.1")
    throttle.record("10.0.0.1", ok=False)
    throttle.record("10.0.0.1", ok=True)  # a success forgets the failures
    throttle.record("10.0.0.1", ok=False)
    assert not throttle.blocked("10.0.0.1")
