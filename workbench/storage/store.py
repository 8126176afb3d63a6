"""The database behind one object: :class:`Store` owns one pooled SQLAlchemy engine.

A process holds one store per database (:func:`shared`): the dashboard's every click, the
analysis functions and the backtest borrow a pooled connection instead of opening one. Read
functions live in one module per noun and take a *source* — a :class:`Store`, a SQLAlchemy
``Connection`` or a psycopg connection (:mod:`workbench.storage.frames`) — and run SQLAlchemy
Core statements built on :mod:`workbench.storage.tables`. The store carries each noun bound to
itself: ``store.transactions`` (:mod:`~workbench.storage.transactions`), ``store.alerts``,
``store.rule_sets``, ``store.dead_letters``, ``store.stats``, ``store.cases`` (the case
queue, :mod:`~workbench.storage.cases`), ``store.audit``
(:mod:`~workbench.storage.audit`, the append-only trail), ``store.labels``
(:mod:`~workbench.storage.labels`, dispositions and chargebacks as labels), ``store.lists``
and ``store.snoozes`` (:mod:`~workbench.storage.lists`, :mod:`~workbench.storage.snoozes`) and
``store.evidence`` (:mod:`~workbench.storage.evidence`: why an alert fired).

Raw psycopg stays where it is the right tool, on a pooled connection (:meth:`Store.raw`):
COPY (not in SQLAlchemy's API, and 5–10× faster than fetching rows), advisory locks (they
belong to one session) and LISTEN/NOTIFY (:mod:`workbench.storage.listen`, a dedicated
connection of its own).

>>> store = Store("postgresql://nobody@127.0.0.1:1/none")  # connects on first use only
>>> store.engine.pool.__class__.__name__
'QueuePool'
>>> print(store.alerts.page.__doc__.splitlines()[0])  # alerts.page, bound to the store
Alerts, newest first; only ``status`` ('open' or 'closed') or the one ``alert_id``
>>> store.close()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import MethodType, ModuleType
from typing import Any

import psycopg
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import QueuePool

from workbench.storage import (
    alerts,
    audit,
    cases,
    dead_letters,
    evidence,
    labels,
    lists,
    rule_sets,
    snoozes,
    stats,
    transactions,
)
from workbench.storage.connection import connect, usable
from workbench.storage.frames import Source, execute, raw

__all__ = ["Noun", "Source", "Store", "close_shared", "execute", "raw", "shared"]


class Noun:
    """One per-noun module's functions bound to a store: ``store.alerts.page(status="open")``
    is ``alerts.page(store, status="open")``. Each is a bound method, so ``help()`` and tab
    completion show the module function's signature and docstring."""

    def __init__(self, store: Store, module: ModuleType) -> None:
        self.module = module
        for name in module.__all__:
            setattr(self, name, MethodType(getattr(module, name), store))

    def __getattr__(self, name: str) -> Any:  # only reached for a name the module lacks
        raise AttributeError(f"{self.module.__name__} has no function {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(self.module.__all__)


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
        self.transactions = Noun(self, transactions)
        self.alerts = Noun(self, alerts)
        self.rule_sets = Noun(self, rule_sets)
        self.dead_letters = Noun(self, dead_letters)
        self.stats = Noun(self, stats)
        self.audit = Noun(self, audit)
        self.labels = Noun(self, labels)
        self.lists = Noun(self, lists)
        self.evidence = Noun(self, evidence)
        self.snoozes = Noun(self, snoozes)
        self.cases = Noun(self, cases)

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
