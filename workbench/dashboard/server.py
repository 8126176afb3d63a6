"""One hub and feed per server process, and ``serve()`` for ``workbench up``.

The hub is created on first use (by the ``--setup`` module of ``panel serve`` or by the first
session) and lives as long as the process, in ``pn.state.cache`` (Panel's per-process store,
which Bokeh's clearing of the served script's globals at session end does not touch) rather
than in a module global: one place says what the process shares, and a test can swap it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import weakref
from dataclasses import dataclass

from workbench.auth.login_config import LoginConfig, check_bind, is_loopback
from workbench.dashboard.feed import Feed
from workbench.dashboard.hub import Hub
from workbench.errors import ConfigError
from workbench.settings import Settings
from workbench.storage import resolve_dsn

log = logging.getLogger(__name__)

_lock = threading.Lock()
CACHE_KEY = "workbench.dashboard.process"


@dataclass
class Shared:
    """What every session of this server process shares."""

    hub: Hub
    feed: Feed
    dsn: str
    publisher_dsn: str


def shared() -> Shared | None:
    """This process's shared hub and feed, if started."""
    import panel as pn

    return pn.state.cache.get(CACHE_KEY)


def dashboard_dsn() -> str:
    """The database the dashboard reads: ``WORKBENCH_DASHBOARD_DATABASE_URL`` (its own
    least-privilege role), else ``WORKBENCH_DATABASE_URL`` or libpq ``PG*``."""
    settings = Settings.load(os.environ)
    dsn = settings.dashboard_database_url or resolve_dsn(os.environ, settings.database_url)
    if not dsn:
        raise ConfigError(
            "the dashboard needs a database: set WORKBENCH_DATABASE_URL or PGHOST/PGDATABASE "
            "(`workbench up` does this for you)"
        )
    return dsn


def start_hub(dsn: str | None = None, *, publisher_dsn: str | None = None) -> Hub:
    """The process's hub, starting it and its feed on first call.

    ``publisher_dsn``: what the rule editor publishes and rolls back with (the publisher
    role); default ``WORKBENCH_PUBLISHER_DATABASE_URL``, else the dashboard's own DSN.
    """
    import panel as pn

    with _lock:
        process = shared()
        if process is None:
            from workbench.dashboard.live_rows import prepare_alerts, prepare_rows

            own = dsn or dashboard_dsn()
            hub = Hub(prepare_rows=prepare_rows, prepare_alerts=prepare_alerts)
            process = Shared(
                hub=hub,
                feed=Feed(hub, own).start(),
                dsn=own,
                publisher_dsn=(
                    publisher_dsn or Settings.load(os.environ).publisher_database_url or own
                ),
            )
            pn.state.cache[CACHE_KEY] = process
            log.info("dashboard hub started")
        return process.hub


def current_dsn() -> str:
    start_hub()
    process = shared()
    assert process is not None
    return process.dsn


def current_publisher_dsn(default: str | None = None) -> str:
    """The DSN rule sets are published with (see :func:`start_hub`); ``default`` (a
    session's own DSN) when this process's hub did not set one."""
    process = shared()
    return process.publisher_dsn if process is not None else default or current_dsn()


_quiet_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def retrieve_closed_socket_errors() -> None:
    """Retrieve, on this server's event loop, the ``WebSocketClosedError`` of writes to a
    browser tab that has closed, which nothing else retrieves; installed once per loop
    (called by every session, on the loop's thread).

    Panel 1.9 writes a document patch to the websocket as several tornado ``write_message``
    calls in a row (``dispatch_tornado`` in ``panel/io/document.py``), each returning a task
    that Panel awaits later. When the tab has just closed, the first write's task fails
    (``StreamClosedError``, re-raised as ``WebSocketClosedError``), the next call raises at
    once, and the list holding the first task is dropped with the exception: nothing ever
    awaits that task, so asyncio logs "Task exception was never retrieved" with a traceback
    for a tab closed during an update (seen in the server log as the tab closes). The message
    was for a tab that is gone: its error is handled here, with a debug line. Every other
    unretrieved error goes to the loop's previous handler, as before.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on a server's loop (a notebook, a test): nothing to do
        return
    if loop in _quiet_loops:
        return
    from tornado.websocket import WebSocketClosedError

    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if isinstance(context.get("exception"), WebSocketClosedError) and "never retrieved" in (
            context.get("message") or ""
        ):
            log.debug("a message to a closed browser tab was dropped")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    _quiet_loops.add(loop)


def stop_hub() -> None:
    import panel as pn

    with _lock:
        process = pn.state.cache.pop(CACHE_KEY, None)
        if process is not None:
            process.feed.stop()


def serve(
    dsn: str,
    *,
    address: str = "127.0.0.1",
    port: int = 5006,
    publisher_dsn: str | None = None,
    login: LoginConfig | None = None,
    no_auth: bool = False,
):
    """Start (not run) a Bokeh/Panel server with the dashboard at ``/`` for ``workbench up``;
    the caller runs ``server.io_loop``. Returns the server; its URL is :func:`url_of`.
    ``dsn`` is the dashboard's database role, ``publisher_dsn`` the rule publisher's.

    Any address but a loopback one needs a login (a ConfigError otherwise, unless
    ``no_auth``: then a loud warning). Websockets are accepted only from pages served by this
    server (its host names with its port, never ``*``): a page of another site cannot drive
    an analyst's session.
    """
    import panel as pn

    from workbench.dashboard.login import setup
    from workbench.dashboard.session import create_app

    login = login or LoginConfig.from_settings(Settings.load(os.environ))
    check_bind(address, login.mode, no_auth=no_auth)
    port = port or free_port(address)  # the origins name the port: known before binding
    auth = setup(login)
    start_hub(dsn, publisher_dsn=publisher_dsn)
    server = pn.serve(
        {"/": lambda: create_app(dsn=dsn)},
        port=port,
        address=address,
        websocket_origin=websocket_origins(address, port),
        show=False,
        start=False,
        title="Fraud Workbench",
        verbose=False,
        **auth,
    )
    server.start()
    return server


def websocket_origins(address: str, port: int) -> list[str]:
    """``host:port`` of every name this server is reached by from a browser.

    A loopback address is reached as itself and ``localhost``; the wildcard addresses as
    this machine's names too (a specific address: only that address).
    """
    hosts = [address]
    if is_loopback(address) or address in ("", "0.0.0.0", "::"):
        hosts += ["localhost", "127.0.0.1"]
    if address in ("", "0.0.0.0", "::"):
        hosts += [socket.gethostname(), socket.getfqdn()]
    return list(dict.fromkeys(f"{h}:{port}" for h in hosts if h and h not in ("0.0.0.0", "::")))


def free_port(address: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def url_of(server, address: str) -> str:
    host = "127.0.0.1" if address in ("", "0.0.0.0") else address
    return f"http://{host}:{server.port}/"
