"""``panel serve ... --auth-module workbench/dashboard/auth.py``: the workbench's login.

Bokeh loads this file by path when the server starts and takes ``get_user``, ``login_url``,
``LoginHandler``, ``logout_url`` and ``LogoutHandler`` from it; they are the same hooks
``workbench up`` passes to ``pn.serve`` (:mod:`workbench.dashboard.login`), and loading it
also sets the persistent cookie secret (``.workbench/cookie_secret``) that Panel hands to the
server. Without a user in the credentials file the server does not start.
"""

import sys

from workbench.dashboard.login import auth_module_hooks
from workbench.errors import WorkbenchError

try:
    globals().update(auth_module_hooks())
except WorkbenchError as exc:
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
