"""The documented ``panel serve`` command with the workbench login, over real HTTP and
websockets: refused and accepted logins (audited), cookie flags, websocket origins.

The command is the README's, with a free port instead of 5006 and the credentials file of
the test (``WORKBENCH_AUTH_USERS_FILE``; the cookie secret is created next to it).
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.login_server import REPO, command, environment, free_port
from tests.processes import stop_group
from workbench.auth.users import UsersFile
from workbench.storage import audit, connect

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
START_S = 120.0


class Client:
    """HTTP without following redirects, so each answer can be looked at."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, *, body: dict | None = None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        data = urllib.parse.urlencode(body) if body is not None else None
        hdrs = dict(headers or {})
        if data is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        response.text = response.read().decode("utf-8", "replace")
        response.close()
        conn.close()
        return response

    def login(self, user: str, password: str):
        return self.request("POST", "/login", body={"username": user, "password": password})


@pytest.fixture(scope="module")
def served(databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    folder = tmp_path_factory.mktemp("login")
    users = UsersFile(folder / "users.json")
    users.add("alice", PASSWORD, "analyst")
    users.add("mallory", PASSWORD, "viewer")
    port = free_port()
    with databases.fresh("wb_login", migrate=True) as dsn:
        log = folder / "panel-serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command(port),
                cwd=REPO,
                env=environment(dsn, users.path),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            client = Client(port)
            deadline = time.monotonic() + START_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"panel serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    client.request("GET", "/login")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("panel serve did not answer")
                    time.sleep(0.25)
            yield client, dsn, users
        finally:
            stop_group(proc, term_grace=10.0)


def _cookies(response) -> dict[str, str]:
    """name -> the whole Set-Cookie header of each cookie set."""
    headers = response.headers.get_all("Set-Cookie") or []
    return {h.split("=", 1)[0]: h for h in headers}


def _cookie_header(response) -> str:
    return "; ".join(h.split(";", 1)[0] for h in _cookies(response).values() if '=""' not in h)


def _logins(dsn: str):
    with connect(dsn) as conn:
        return audit.recent(conn, 50, action="login").sort_values("id")


def test_the_dashboard_needs_a_login(served) -> None:
    client, _, _ = served
    response = client.request("GET", "/")
    assert response.status == 302 and "login" in response.getheader("Location")
    response = client.request("GET", "/app")
    assert response.status == 302 and "login" in response.getheader("Location")
    page = client.request("GET", "/login?error=<script>alert(1)</script>")
    assert page.status == 200 and "<script" not in page.text
    assert "Wrong user name or password." in page.text  # fixed text, never the URL's


def test_a_wrong_password_is_refused_and_audited(served) -> None:
    client, dsn, _ = served
    for user, password in [("alice", "wrong password"), ("nobody", PASSWORD)]:
        response = client.login(user, password)
        assert response.status == 302 and "error=1" in response.getheader("Location")
        assert "user" not in _cookies(response)
    rows = _logins(dsn)
    refused = rows[rows["outcome"] == "refused"]
    assert {"alice", "nobody"} <= set(refused["actor"])
    assert set(refused["address"]) == {"127.0.0.1"} and set(refused["provider"]) == {"basic"}


def test_the_right_password_sets_httponly_samesite_cookies(served) -> None:
    client, dsn, _ = served
    response = client.login("alice", PASSWORD)
    assert response.status == 302
    cookies = _cookies(response)
    for name in ("user", "id_token"):
        flags = [f.strip().lower() for f in cookies[name].split(";")[1:]]
        assert "httponly" in flags and "samesite=lax" in flags, cookies[name]
        assert "secure" not in flags  # plain http here; Secure is set over https
    ok = _logins(dsn)
    ok = ok[(ok["outcome"] == "ok") & (ok["actor"] == "alice")]
    assert len(ok) >= 1 and ok.iloc[-1]["role"] == "analyst"
    page = client.request("GET", "/", headers={"Cookie": _cookie_header(response)})
    assert page.status == 200 and "Fraud Workbench" in page.text


def _token(page: str) -> str:
    found = re.search(r'"token"\s*:\s*"([^"]+)"', page)
    assert found, "no session token in the page"
    return found.group(1)


def _ws(port: int, origin: str, cookie: str, token: str):
    """Open the session's websocket (the HTTP upgrade) with ``origin``: "open" when the server
    switches protocols, else its HTTP status. Plain http.client, so the socket is closed here
    whatever the answer (a refused tornado client left its socket to the garbage collector)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "GET",
            "/ws",
            headers={
                "Origin": origin,
                "Cookie": cookie,
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Protocol": f"bokeh, {token}",
            },
        )
        response = conn.getresponse()
        return "open" if response.status == 101 else response.status
    finally:
        conn.close()


def test_a_forged_origin_is_refused_on_the_websocket(served) -> None:
    client, _, _ = served
    cookie = _cookie_header(client.login("alice", PASSWORD))
    # the page itself is served whatever its Origin header says
    page = client.request("GET", "/", headers={"Cookie": cookie, "Origin": "http://evil.example"})
    assert page.status == 200
    token = _token(page.text)
    port = client.port
    assert _ws(port, "http://evil.example", cookie, token) == 403
    assert _ws(port, f"http://evil.example:{port}", cookie, token) == 403
    assert _ws(port, f"http://127.0.0.1:{port}", "", token) != "open"  # no login
    assert _ws(port, f"http://127.0.0.1:{port}", cookie, token) == "open"


def test_a_removed_user_is_sent_back_to_the_login(served) -> None:
    client, _, users = served
    cookie = _cookie_header(client.login("mallory", PASSWORD))
    assert client.request("GET", "/", headers={"Cookie": cookie}).status == 200
    users.remove("mallory")
    response = client.request("GET", "/", headers={"Cookie": cookie})
    assert response.status == 302 and "login" in response.getheader("Location")


def test_logout_clears_the_cookie_and_is_audited(served) -> None:
    client, dsn, _ = served
    cookie = _cookie_header(client.login("alice", PASSWORD))
    response = client.request("GET", "/logout", headers={"Cookie": cookie})
    assert response.status == 200
    assert '=""' in _cookies(response)["user"]  # cleared
    with connect(dsn) as conn:
        rows = audit.recent(conn, 5, action="logout")
    assert list(rows["actor"])[:1] == ["alice"]


def test_panel_serve_without_a_user_does_not_start(databases, tmp_path: Path) -> None:
    with databases.fresh("wb_login_none", migrate=True) as dsn:
        out = subprocess.run(
            command(free_port()),
            cwd=REPO,
            env=environment(dsn, tmp_path / "users.json"),
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert out.returncode != 0
    assert "workbench users add" in out.stdout + out.stderr


@pytest.mark.slow
def test_workbench_up_on_a_public_address_with_a_login(db_dsn: str, tmp_path: Path) -> None:
    """``up --address 0.0.0.0`` with a user: served, behind the login, origins checked."""
    users = UsersFile(tmp_path / "users.json")
    users.add("alice", PASSWORD, "admin")
    port = free_port()
    env = environment(db_dsn, users.path)
    env.update(WORKBENCH_DASHBOARD_PORT=str(port), WORKBENCH_RATE="200")
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", "up", "--address", "0.0.0.0", "--duration", "60"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = Client(port)
        deadline = time.monotonic() + START_S
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                response = client.request("GET", "/")
                break
            except OSError:
                assert time.monotonic() < deadline, "workbench up did not answer"
                time.sleep(0.25)
        assert response.status == 302 and "login" in response.getheader("Location")
        assert client.login("alice", "wrong password").status == 302
        cookie = _cookie_header(client.login("alice", PASSWORD))
        page = client.request("GET", "/", headers={"Cookie": cookie})
        assert page.status == 200
        token = _token(page.text)
        assert _ws(port, "http://evil.example", cookie, token) == 403
        assert _ws(port, f"http://localhost:{port}", cookie, token) == "open"
        assert (tmp_path / "cookie_secret").stat().st_mode & 0o777 == 0o600
    finally:
        stop_group(proc, term_grace=20.0)
    with connect(db_dsn) as conn:
        rows = audit.recent(conn, 10, action="login")
    assert set(zip(rows["actor"], rows["outcome"], strict=True)) == {
        ("alice", "refused"),
        ("alice", "ok"),
    }
