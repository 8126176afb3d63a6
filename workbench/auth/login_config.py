"""Which login the dashboard uses, read from the settings: OAuth, the credentials file, or none.

* ``oauth`` when ``WORKBENCH_AUTH_OAUTH_PROVIDER`` names one of Panel's providers: Panel runs
  the whole OAuth flow; we only pass its configuration (:meth:`LoginConfig.serve_kwargs`) and
  map the login name to a role (``WORKBENCH_AUTH_OAUTH_ROLES``, else the default role);
* ``basic`` when the credentials file (``WORKBENCH_AUTH_USERS_FILE``) holds a user: our
  login page checks the argon2 hashes (:mod:`workbench.dashboard.login`);
* ``None``: no login; every session is the machine's local user with ``WORKBENCH_LOCAL_ROLE``,
  and the dashboard may only listen on a loopback address (:func:`check_bind`).

>>> from workbench.settings import Settings
>>> config = LoginConfig.from_settings(Settings.load({
...     "WORKBENCH_AUTH_OAUTH_PROVIDER": "github", "WORKBENCH_AUTH_OAUTH_KEY": "id",
...     "WORKBENCH_AUTH_OAUTH_SECRET": "s3cret",
...     "WORKBENCH_AUTH_OAUTH_ROLES": "alice@x.org=admin, bob@x.org=analyst"}))
>>> config.mode, config.oauth_role("alice@x.org"), config.oauth_role("eve@y.org")
('oauth', <Role.ADMIN: 4>, <Role.VIEWER: 1>)
>>> sorted(config.serve_kwargs())
['oauth_extra_params', 'oauth_key', 'oauth_provider', 'oauth_secret']
>>> check_bind("127.0.0.1", None, no_auth=False)  # loopback: no login needed
>>> check_bind("0.0.0.0", None, no_auth=False)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
workbench.errors.ConfigError: refusing to serve the dashboard on 0.0.0.0 without a login: ...
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.auth.roles import Role
from workbench.auth.users import UsersFile, check_name
from workbench.errors import ConfigError

__all__ = ["LoginConfig", "check_bind", "is_loopback"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginConfig:
    """The dashboard's login, validated when built (a bad role mapping is a ConfigError)."""

    mode: str | None  # "oauth", "basic" or None
    users: UsersFile
    local_role: Role = Role.ADMIN
    oauth_provider: str = ""
    oauth_key: str = ""
    oauth_secret: str = field(default="", repr=False)
    oauth_redirect_uri: str = ""
    oauth_extra_params: dict[str, Any] = field(default_factory=dict)
    oauth_roles: dict[str, Role] = field(default_factory=dict)
    oauth_default_role: Role = Role.VIEWER

    @classmethod
    def from_settings(cls, settings) -> LoginConfig:
        users = UsersFile(Path(settings.auth_users_file))
        provider = settings.auth_oauth_provider.strip()
        mode = "oauth" if provider else ("basic" if users else None)
        extra = settings.auth_oauth_extra_params
        if provider and not (settings.auth_oauth_key and settings.auth_oauth_secret):
            raise ConfigError(
                f"OAuth provider {provider!r} needs WORKBENCH_AUTH_OAUTH_KEY and "
                "WORKBENCH_AUTH_OAUTH_SECRET"
            )
        return cls(
            mode=mode,
            users=users,
            local_role=Role.parse(settings.local_role),
            oauth_provider=provider,
            oauth_key=settings.auth_oauth_key,
            oauth_secret=settings.auth_oauth_secret,
            oauth_redirect_uri=settings.auth_oauth_redirect_uri,
            oauth_extra_params=json.loads(extra) if extra else {},
            oauth_roles=parse_roles(settings.auth_oauth_roles),
            oauth_default_role=Role.parse(settings.auth_oauth_default_role),
        )

    def oauth_role(self, user: str) -> Role:
        """The role of an OAuth login name: its mapping, else the default role."""
        return self.oauth_roles.get(user, self.oauth_default_role)

    def serve_kwargs(self) -> dict[str, Any]:
        """The ``oauth_*`` arguments of ``pn.serve`` (empty unless the mode is ``oauth``)."""
        if self.mode != "oauth":
            return {}
        kwargs: dict[str, Any] = {
            "oauth_provider": self.oauth_provider,
            "oauth_key": self.oauth_key,
            "oauth_secret": self.oauth_secret,
            "oauth_extra_params": dict(self.oauth_extra_params),
        }
        if self.oauth_redirect_uri:
            kwargs["oauth_redirect_uri"] = self.oauth_redirect_uri
        return kwargs


def parse_roles(text: str) -> dict[str, Role]:
    """``"alice@x.org=admin,bob=analyst"`` -> {name: Role}; a ConfigError names a bad entry."""
    roles: dict[str, Role] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, role = item.partition("=")
        if not sep:
            raise ConfigError(
                f"WORKBENCH_AUTH_OAUTH_ROLES: {item[:80]!r} is not USER=ROLE "
                "(e.g. alice@x.org=admin)"
            )
        roles[check_name(name.strip())] = Role.parse(role)
    return roles


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: reachable from this machine only."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(address: str, mode: str | None, *, no_auth: bool, warn: bool = True) -> None:
    """Refuse a non-loopback ``address`` without a login unless ``no_auth``, which warns
    (``warn``: the server itself does; the early checks of the command line do not)."""
    if mode is not None or is_loopback(address):
        return
    if no_auth:
        if not warn:
            return
        log.warning(
            "SERVING THE DASHBOARD ON %s WITHOUT A LOGIN (--no-auth): anyone who reaches this "
            "port can publish rules and close alerts",
            address,
        )
        return
    raise ConfigError(
        f"refusing to serve the dashboard on {address} without a login: add a user "
        "(workbench users add NAME --role ROLE), configure OAuth "
        "(WORKBENCH_AUTH_OAUTH_PROVIDER), or pass --no-auth on a trusted network"
    )
