"""Who the current browser session is (:func:`session_identity`), and the login that says so.

Three logins, chosen once when the server starts (:class:`~workbench.auth.login_config.
LoginConfig`): none (the dashboard listens on loopback only; every session is the machine's
user with ``WORKBENCH_LOCAL_ROLE``), ``basic`` (our login page, checked against the argon2
credentials file) or ``oauth`` (Panel's provider; the role comes from the OAuth role mapping).

The ``basic`` login is Panel's own machinery (``BasicAuthProvider``) with our handlers:

* the login page is served here, self-contained (no CDN), and its error text is fixed (a
  message in the URL would let anyone write on our page);
* a password is checked in a worker thread (argon2 costs ~50 ms on purpose; the server's
  event loop keeps serving other sessions) and every attempt, accepted or refused, is written
  to the audit trail (action ``login``, the remote address); a login that cannot be audited
  is refused;
* the session cookies are HttpOnly, SameSite=Lax (sent on the redirect after login and on
  links into the dashboard, never on cross-site requests), ``Secure`` over https, and signed
  with the persistent secret of ``.workbench/cookie_secret``;
* the user is looked up in the credentials file on every request: a removed user is sent to
  the login page at once, a changed role applies to the next session.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
from pathlib import Path

import panel as pn
from panel.auth import BasicAuthProvider, BasicLoginHandler, LogoutHandler
from panel.util import base64url_encode
from tornado.ioloop import IOLoop

from workbench.auth.login_config import LoginConfig
from workbench.auth.private import cookie_secret
from workbench.auth.roles import Identity
from workbench.auth.users import MAX_PASSWORD, UsersFile
from workbench.dashboard.safe import html
from workbench.dashboard.server import current_dsn
from workbench.errors import WorkbenchError
from workbench.settings import Settings

__all__ = ["LoginRefused", "WorkbenchAuthProvider", "session_identity", "setup"]

log = logging.getLogger(__name__)

COOKIE_SECRET = "cookie_secret"  # next to the credentials file: .workbench/cookie_secret
SAMESITE = "Lax"
_active: LoginConfig | None = None  # the login the server in this process was started with


class LoginRefused(WorkbenchError):
    """A session without a valid login (e.g. its user was removed since it logged in)."""


def setup(config: LoginConfig | None = None, *, secret_file: Path | None = None) -> dict:
    """Configure this process's login; the keyword arguments ``pn.serve`` needs for it.

    With a login: the cookie secret (Panel signs and reads the user's cookie with it), kept
    in ``cookie_secret`` next to the credentials file (``.workbench/`` by default), and the
    auth provider (ours, or Panel's OAuth one). Without one: nothing.
    """
    global _active
    config = config or LoginConfig.from_settings(Settings.load())
    _active = config
    if config.mode is None:
        return {}
    secret = cookie_secret(secret_file or config.users.path.parent / COOKIE_SECRET)
    pn.config.cookie_secret = secret  # Panel reads the user's cookie with it
    kwargs: dict = {"cookie_secret": secret}
    if config.mode == "basic":
        kwargs["auth_provider"] = WorkbenchAuthProvider(config.users)
    else:
        kwargs.update(config.serve_kwargs())
    return kwargs


def session_identity() -> Identity:
    """The identity of the session being built (call it while building the session).

    Raises :class:`LoginRefused` for a logged-in name that no longer has an account.
    """
    config = _active or LoginConfig.from_settings(Settings.load())
    user = pn.state.user
    address = _address()
    if not user or config.mode is None:
        name = f"local:{_os_user()}"
        return Identity(name, config.local_role, provider="local", address=address)
    if config.mode == "oauth":
        return Identity(user, config.oauth_role(user), provider="oauth", address=address)
    account = config.users.get(user)
    if account is None:
        raise LoginRefused(f"{user!r} has no account any more: log in again")
    return Identity(user, account.role, provider="basic", address=address)


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
        password = self.get_argument("password", "")[: MAX_PASSWORD + 1]
        address = self.request.remote_ip
        loop = IOLoop.current()
        account = await loop.run_in_executor(None, self.users.verify, name, password)
        outcome = "ok" if account is not None else "refused"
        try:
            await loop.run_in_executor(None, _audit_login, name, account, outcome, address)
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


def _audit_login(name: str, account, outcome: str, address: str | None, action: str = "login"):
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
            detail=None if outcome == "ok" else "wrong user name or password",
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


def user_badge(identity: Identity):
    """The header's "alice (analyst)" and, with a login, a Logout link (escaped)."""
    logout = html(" <a href='./logout' class='wb-logout'>Log out</a>")
    return html(
        "<span class='wb-user'>{who}</span>{logout}",
        who=str(identity),
        logout=logout if identity.provider in ("basic", "oauth") else html(""),
    )


def _address() -> str | None:
    doc = pn.state.curdoc
    context = getattr(doc, "session_context", None) if doc is not None else None
    request = getattr(context, "request", None)
    return getattr(request, "remote_ip", None)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def auth_module_hooks() -> dict:
    """What Bokeh's ``--auth-module`` file exports, for ``panel serve`` (see ``auth.py``).

    The login of ``panel serve`` is the credentials file's; with no user in it the server
    refuses to start (one line, exit 1): a documented command that serves without a login
    by accident is what this replaces. OAuth under ``panel serve`` uses Panel's own
    ``--oauth-*`` options instead.
    """
    config = LoginConfig.from_settings(Settings.load())
    if config.mode != "basic":
        raise LoginRefused(
            f"no user in {config.users.path}: add one with `workbench users add NAME --role "
            "ROLE` (for OAuth, use panel serve's --oauth-* options instead of --auth-module)"
        )
    provider = setup(config)["auth_provider"]
    return {
        "get_user": provider.get_user,
        "login_url": provider.login_url,
        "LoginHandler": provider.login_handler,
        "logout_url": provider.logout_url,
        "LogoutHandler": provider.logout_handler,
    }
