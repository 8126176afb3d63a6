"""The ``basic`` login over Panel's own machinery: the auth provider and its handlers.

:class:`WorkbenchAuthProvider` is Panel's ``BasicAuthProvider`` with our handlers:

* the login page is served here, self-contained (no CDN, no script), and its error text is
  fixed (a message taken from the URL would let anyone write on our page);
* a password is checked in a worker thread (argon2 costs ~50 ms on purpose; the server's
  event loop keeps serving other sessions); every attempt, accepted or refused, is written to
  the audit trail (action ``login``, the remote address), and a login that cannot be audited
  is refused; an address with too many recent failures is refused without a check
  (:class:`Throttle`);
* the session cookies are HttpOnly, SameSite=Lax (sent on the redirect after login and on
  links into the dashboard, never on cross-site requests) and ``Secure`` over https;
* the user is looked up in the credentials file on every request: a removed user is sent to
  the login page at once.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import time

import panel as pn
from panel.auth import BasicAuthProvider, BasicLoginHandler, LogoutHandler
from panel.util import base64url_encode
from tornado.ioloop import IOLoop

from workbench.auth.users import MAX_PASSWORD, UsersFile
from workbench.dashboard.safe import html
from workbench.dashboard.server import current_dsn
from workbench.errors import WorkbenchError

__all__ = ["THROTTLE", "Throttle", "WorkbenchAuthProvider", "login_page", "logout_page"]

log = logging.getLogger(__name__)

SAMESITE = "Lax"


class WorkbenchAuthProvider(BasicAuthProvider):
    """Panel's basic auth provider with our login/logout handlers over ``users``."""

    def __init__(self, users: UsersFile, **kwargs) -> None:
        self.users = users  # before Panel's __init__: Bokeh's validates the handlers there
        super().__init__(**kwargs)

    @property
    def get_user(self):
        panel_user = super().get_user

        def get_user(request_handler):
            user = panel_user(request_handler)
            if user and self.users.get(user) is None:
                return None  # removed since the cookie was signed: back to the login page
            return user

        return get_user

    @functools.cached_property
    def login_handler(self):
        attrs = {"users": self.users, "_login_endpoint": self._login_endpoint}
        return type("WorkbenchLoginHandler", (LoginHandler,), attrs)

    @functools.cached_property
    def logout_handler(self):
        attrs = {"_login_endpoint": self._login_endpoint}
        return type("WorkbenchLogoutHandler", (Logout,), attrs)


class LoginHandler(BasicLoginHandler):
    """``GET /login``: the form; ``POST /login``: check, audit, set the cookie, redirect."""

    users: UsersFile

    def get(self) -> None:
        failed = self.get_argument("error", "") != ""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.write(login_page(self._login_endpoint, failed=failed))

    async def post(self) -> None:
        name = self.get_argument("username", "")[:200]
        # never stripped: the password is hashed exactly as `workbench users add` read it
        password = self.get_argument("password", "", strip=False)[: MAX_PASSWORD + 1]
        address = self.request.remote_ip or "unknown"
        loop = IOLoop.current()
        detail = None
        if THROTTLE.blocked(address):
            account, detail = None, "too many failed logins from this address: wait"
        else:
            account = await loop.run_in_executor(None, self.users.verify, name, password)
            THROTTLE.record(address, ok=account is not None)
        outcome = "ok" if account is not None else "refused"
        try:
            await loop.run_in_executor(
                None, _audit_login, name, account, outcome, address, "login", detail
            )
        except WorkbenchError:
            log.exception("login of %r from %s could not be audited: refused", name, address)
            account = None
        if account is None:
            self.redirect(f".{self._login_endpoint}?error=1")
            return
        self.set_current_user(account.name)
        self.redirect("./")

    def set_current_user(self, user: str) -> None:
        secure = self.request.protocol == "https"
        flags = {
            "httponly": True,
            "samesite": SAMESITE,
            "secure": secure,
            "path": pn.config.cookie_path,
        }
        self.clear_cookie("is_guest")
        self.set_secure_cookie("user", user, expires_days=pn.config.oauth_expiry, **flags)
        # Panel's pn.state.user_info reads the user from this one (a base64 JSON token)
        token = base64url_encode(json.dumps({"user": user}))
        if pn.state.encryption:
            token = pn.state.encryption.encrypt(token.encode("utf-8"))
        self.set_secure_cookie("id_token", token, expires_days=pn.config.oauth_expiry, **flags)


class Logout(LogoutHandler):
    """``GET /logout``: clears the session cookies and records the logout; a page of ours
    (Panel's loads its logo from a CDN)."""

    def get(self) -> None:
        user = self.get_secure_cookie("user")
        if user:
            try:
                name = user.decode("utf-8", "replace")
                _audit_login(name, None, "ok", self.request.remote_ip, action="logout")
            except WorkbenchError:
                log.exception("logout could not be audited")
        for cookie in ("user", "id_token", "access_token", "refresh_token", "oauth_expiry"):
            self.clear_cookie(cookie, path=pn.config.cookie_path)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.write(logout_page(self._login_endpoint))


class Throttle:
    """Failed logins per address: after ``limit`` within ``window`` seconds, that address is
    refused without a password check until its oldest failure leaves the window (a guessing
    script gets ``limit`` tries per window; argon2 makes each one slow besides)."""

    def __init__(self, limit: int = 10, window: float = 300.0, clock=time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, collections.deque[float]] = {}

    def blocked(self, address: str) -> bool:
        failures = self._failures.get(address)
        if not failures:
            return False
        horizon = self.clock() - self.window
        while failures and failures[0] < horizon:
            failures.popleft()
        return len(failures) >= self.limit

    def record(self, address: str, *, ok: bool) -> None:
        if ok:
            self._failures.pop(address, None)
            return
        if len(self._failures) > 10_000:  # bounded: forget the quietest addresses
            for key in [k for k, v in self._failures.items() if len(v) < 2][:5_000]:
                del self._failures[key]
        self._failures.setdefault(address, collections.deque(maxlen=self.limit)).append(
            self.clock()
        )


THROTTLE = Throttle()


def _audit_login(
    name: str,
    account,
    outcome: str,
    address: str | None,
    action: str = "login",
    detail: str | None = None,
):
    """One audit row (its own transaction) on the dashboard's database."""
    from workbench.storage import audit, connect

    with connect(current_dsn(), connect_timeout=5) as conn:
        audit.record(
            conn,
            actor=name or "(empty)",
            action=action,
            outcome=outcome,
            role=None if account is None else account.role.label,
            provider="basic",
            address=address,
            detail=detail or (None if outcome == "ok" else "wrong user name or password"),
        )


def login_page(endpoint: str, *, failed: bool) -> str:
    """The login form: self-contained (no CDN, no script), the error text fixed."""
    error = html("<p class='error' role='alert'>Wrong user name or password.</p>")
    return html(
        """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fraud Workbench - log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{font-family: system-ui, sans-serif; background: #f4f6f8; margin: 0}}
form {{max-width: 320px; margin: 12vh auto; background: #fff; padding: 24px 28px;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15)}}
h1 {{font-size: 1.3em; margin: 0 0 16px}} label {{display: block; margin: 10px 0 4px}}
input {{width: 100%; box-sizing: border-box; padding: 8px; font-size: 1em}}
button {{margin-top: 18px; width: 100%; padding: 9px; font-size: 1em}}
.error {{color: #b00020; font-weight: bold}}
</style></head><body>
<form action=".{endpoint}" method="post">
<h1>Fraud Workbench</h1>{error}
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login-submit" type="submit">Log in</button>
</form></body></html>""",
        endpoint=endpoint,
        error=error if failed else html(""),
    )


def logout_page(endpoint: str) -> str:
    return html(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Fraud Workbench - logged out</title></head>"
        "<body style='font-family: system-ui, sans-serif; text-align: center; margin-top: 15vh'>"
        "<p id='logged-out'>You are logged out.</p><p><a href='.{endpoint}'>Log in again</a></p>"
        "</body></html>",
        endpoint=endpoint,
    )
