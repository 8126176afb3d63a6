"""A benchmark's own database: created on the server of ``--dsn``, dropped at the end.

Every script that needs PostgreSQL takes ``--dsn`` (default :func:`admin_dsn`: the
``WORKBENCH_BENCH_DSN`` environment variable, else :data:`DEFAULT_DSN`) as the server to
work on, and runs in a database of its own::

    with own_database(args.dsn, "wb_bench_queue") as dsn:   # wb_bench_queue_<pid>
        with connect(dsn) as conn:
            upgrade(conn)
        ...

The contract: :func:`own_database` yields the DSN of an *empty, unmigrated* database with
durable commits (``synchronous_commit = on`` whatever the server default, so figures are
honest), and drops it ``WITH (FORCE)`` when the block ends, also on an error, Ctrl-C or
SIGTERM (which unwinds as Ctrl-C while the block runs; a second Ctrl-C cannot skip the
drop). Migrating is the caller's: most call ``upgrade(conn)`` first thing, but some measure
the product's own first start on an empty database.

``keep`` names a database to use and keep (a script's ``--keep DBNAME``): it is created
only if missing and never dropped, so a second run reuses what the first one stored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

import psycopg
from psycopg import conninfo, sql

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_dsn() -> str:
    """The server to benchmark on: ``WORKBENCH_BENCH_DSN`` or :data:`DEFAULT_DSN`."""
    return os.environ.get("WORKBENCH_BENCH_DSN", DEFAULT_DSN)


def _admin(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def own_database(admin: str, prefix: str, *, keep: str | None = None) -> Iterator[str]:
    """Yield the DSN of database ``<prefix>_<pid>`` (or ``keep``) on the server of ``admin``.

    See the module docstring for the contract.
    """
    name = keep or f"{prefix}_{os.getpid()}"
    ident = sql.Identifier(name)
    handlers = threading.current_thread() is threading.main_thread()
    reached = False  # the server answered: there may be a database to drop
    if handlers:
        old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _admin(admin) as conn:
            reached = True
            if keep is None:  # a leftover of a killed run whose pid is ours again
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
            conn.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(ident))
        yield conninfo.make_conninfo(admin, dbname=name)
    finally:
        if handlers:
            old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if keep is None and reached:
                with _admin(admin) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        finally:
            if handlers:
                signal.signal(signal.SIGINT, old_int)
                signal.signal(signal.SIGTERM, old_term)
