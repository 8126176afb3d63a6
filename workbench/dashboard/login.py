"""Who the current browser session is (:func:`session_identity`), and the login that says so.

Three logins, chosen once when the server starts (:class:`~workbench.auth.login_config.
LoginConfig`): none (the dashboard listens on loopback only; every session is the machine's
user with ``WORKBENCH_LOCAL_ROLE``), ``basic`` (our login page, checked against the argon2
credentials file) or ``oauth`` (Panel's provider; the role comes from the OAuth role mapping).

The ``basic`` login is Panel's own machinery with our handlers
(:mod:`workbench.dashboard.login_handlers`); the cookies are signed with the persistent
secret of ``.workbench/cookie_secret`` (made on first use, mode 0600). Roles are read from
the credentials file for each new session: a role change applies to the next session, a
removed user gets none.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import panel as pn

from workbench.auth.login_config import LoginConfig
from workbench.auth.private import cookie_secret
from workbench.auth.roles import Identity
from workbench.dashboard.login_handlers import WorkbenchAuthProvider
from workbench.dashboard.safe import html
from workbench.errors import WorkbenchError
from workbench.settings import Settings

__all__ = ["LoginRefused", "WorkbenchAuthProvider", "session_identity", "setup"]


COOKIE_SECRET = "cookie_secret"  # next to the credentials file: .workbench/cookie_secret
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
