"""The database behind one object: :class:`Store` owns one pooled SQLAlchemy engine.

A process holds one store per database (:func:`shared`): the dashboard's every click, the
analysis functions and the backtest borrow a pooled connection instead of opening one. Read
functions (:mod:`workbench.storage.queries`) take a *source* — a :class:`Store`, a SQLAlchemy
``Connection`` or a psycopg connection — and run SQLAlchemy Core statements built on
:mod:`workbench.storage.tables`.

Raw psycopg stays where it is the right tool, on a pooled connection (:meth:`Store.raw`):
COPY (not in SQLAlchemy's API, and 5–10× faster than fetching rows), advisory locks (they
belong to one session) and LISTEN/NOTIFY (:mod:`workbench.storage.listen`, a dedicated
connection of its own).

>>> store = Store("postgresql://nobody@127.0.0.1:1/none")  # connects on first use only
>>> store.engine.pool.__class__.__name__
'QueuePool'
>>> store.close()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy import Connection, Executable, create_engine
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.pool import QueuePool

from workbench.storage.connection import connect, reading, usable

Source = Any  # Store | sqlalchemy.Connection | psycopg.Connection

_DIALECT = PGDialect_psycopg()


class Store:
    """One pooled engine (``QueuePool``, ``pool_pre_ping``) for ``dsn``; connects lazily.

    ``pool_size`` connections are kept, ``max_overflow`` more are opened under load.
    """

    def __init__(
        self, dsn: str, *, pool_size: int = 4, max_overflow: int = 4, connect_timeout: int = 5
    ) -> None:
        self.dsn = dsn
        self._timeout = connect_timeout
        # Our connect(): the DSN's one-line errors (never a password) and application_name.
        self.engine = create_engine(
            "postgresql+psycopg://",
            creator=self._connect,
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
        )

    def _connect(self) -> psycopg.Connection:
        return connect(self.dsn, autocommit=False, connect_timeout=self._timeout)

    def connect(self) -> Connection:
        """A pooled SQLAlchemy connection (use it as a context manager)."""
        return self.engine.connect()

    @contextlib.contextmanager
    def raw(self) -> Iterator[psycopg.Connection]:
        """A pooled psycopg connection, autocommit while lent (storage functions open their own
        transactions): for COPY and advisory locks, which SQLAlchemy does not cover."""
        fairy = self.engine.raw_connection()
        conn: psycopg.Connection = fairy.driver_connection  # type: ignore[assignment]
        try:
            conn.autocommit = True
            yield conn
        finally:
            if usable(conn):
                conn.autocommit = False  # as the pool lends it to SQLAlchemy
            else:
                fairy.invalidate()
            fairy.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: dict[str, Store] = {}
_shared_lock = threading.Lock()


def shared(dsn: str) -> Store:
    """The process's one store for ``dsn`` (made on first use): one pool per server process."""
    with _shared_lock:
        store = _shared.get(dsn)
        if store is None:
            store = _shared[dsn] = Store(dsn)
        return store


def close_shared() -> None:
    """Close and forget every shared store (tests, process shutdown)."""
    with _shared_lock:
        for store in _shared.values():
            store.close()
        _shared.clear()


@contextlib.contextmanager
def raw(source: Source) -> Iterator[psycopg.Connection]:
    """The psycopg connection of ``source`` (a pooled one for a :class:`Store`)."""
    if isinstance(source, Store):
        with source.raw() as conn:
            yield conn
    elif isinstance(source, Connection):
        yield source.connection.driver_connection  # type: ignore[misc]
    else:
        yield source


def execute(source: Source, statement: Executable) -> tuple[list[tuple], list[str]]:
    """Run a SQLAlchemy Core statement on ``source``; its rows and column names.

    On a psycopg connection the statement is compiled for psycopg and run on it directly (no
    engine is built around a connection the caller owns), leaving it as idle as it was.
    """
    if isinstance(source, Store):
        with source.connect() as conn:
            result = conn.execute(statement)
            return [tuple(r) for r in result.fetchall()], list(result.keys())
    if isinstance(source, Connection):
        result = source.execute(statement)
        return [tuple(r) for r in result.fetchall()], list(result.keys())
    compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    with reading(source), source.cursor() as cur:
        cur.execute(str(compiled), params)
        rows = cur.fetchall()
        names = [d.name for d in cur.description or ()]
    return rows, names
