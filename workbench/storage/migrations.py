"""Schema migrations with Alembic: ``upgrade``, ``status``, ``reset``, ``check``.

The revisions live in ``workbench/storage/alembic/versions`` (shipped as package data) and
are run in code: the :class:`~alembic.config.Config` is built here, ``script_location`` is
that folder, and the caller's connection is handed to ``env.py`` through
``config.attributes["connection"]`` — there is no ``alembic.ini``. The target of every revision
is the metadata of :mod:`workbench.storage.tables`; :func:`check` (``alembic check``) tells
whether a database matches it.

A session-level advisory lock (:data:`MIGRATION_LOCK`) serialises :func:`upgrade` and
:func:`reset` across processes, so several workers starting at once do not race: the second
waits, then finds the database current. Each revision runs in its own transaction.

Databases migrated by the old hand-written runner (a ``schema_migrations`` table, versions
1–6) are stamped at the matching revision — version 4 → ``0001``, 5 → ``0002``, 6 → ``0003``
— and ``schema_migrations`` is dropped in the same transaction (``alembic_version`` is the
record from then on); the remaining revisions then run as usual. A partial wave-1 history
(versions below 4) is completed with the old SQL first. See :mod:`workbench.storage.legacy`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import StaticPool

from workbench.storage import legacy
from workbench.storage.connection import require_idle, storage_errors
from workbench.storage.legacy import MIGRATIONS  # noqa: F401  (wave-1 databases in tests)
from workbench.storage.tables import VIEWS, include_object, metadata

# pg_advisory_lock key for schema changes ("wb" + 1); partitions use their own key.
MIGRATION_LOCK = 0x77620001

SCRIPTS = Path(__file__).with_name("alembic")

# The old runner's newest version -> the revision whose schema it had built.
LEGACY_REVISIONS = {4: "0001", 5: "0002", 6: "0003"}

# Everything of ours, dropped by reset() (partitions go with their parent).
_OBJECTS = (
    *(t.name for t in reversed(metadata.sorted_tables)),
    "alembic_version",
    "schema_migrations",
)
_FUNCTIONS = (  # functions of the revisions
    "audit_log_append_only()",
    "workbench_create_partitions(date[])",
    "workbench_drop_partitions(timestamptz)",
)


@dataclass(frozen=True)
class MigrationStatus:
    revision: str
    name: str
    applied: bool


def config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, built in code; ``connection`` is what ``env.py`` runs on."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def revisions() -> list[tuple[str, str]]:
    """Every revision, oldest first: ``(revision, first line of its docstring)``."""
    scripts = ScriptDirectory.from_config(config())
    return [
        (s.revision, (s.doc or "").strip().splitlines()[0] if s.doc else "")
        for s in reversed(list(scripts.walk_revisions()))
    ]


def upgrade(conn: psycopg.Connection) -> list[str]:
    """Apply every pending revision, each in its own transaction; the revisions applied
    (a stamped wave-1 history is not counted: it was applied by the old runner).

    Safe to call from several processes at once and on every start (a no-op when current).
    """
    require_idle(conn, "migrate the database")
    with storage_errors("cannot migrate the database"), _locked(conn), _alembic(conn) as sa:
        before = _current(sa)
        if before is None:
            before = _stamp_legacy(sa)
        command.upgrade(config(sa), "head")
        after = _current(sa)
    order = [r for r, _ in revisions()]
    start = order.index(before) + 1 if before in order else 0
    return order[start : order.index(after) + 1] if after in order else []


def status(conn: psycopg.Connection) -> list[MigrationStatus]:
    """Every revision, oldest first, and whether the database has it (a database of the old
    runner counts as the revision it would be stamped at)."""
    with storage_errors("cannot read migration status"), _alembic(conn) as sa:
        current = _current(sa) or LEGACY_REVISIONS.get(_legacy_version(sa) or 0)
        sa.rollback()
    known = revisions()
    order = [r for r, _ in known]
    upto = order.index(current) if current in order else -1
    return [MigrationStatus(r, name, i <= upto) for i, (r, name) in enumerate(known)]


def check(conn: psycopg.Connection) -> list:
    """Differences between the database and :data:`tables.metadata`, as autogenerate sees
    them (what ``alembic check`` reports); empty when they match."""
    from alembic.autogenerate import compare_metadata

    with storage_errors("cannot compare the schema"), _alembic(conn) as sa:
        context = MigrationContext.configure(sa, opts={"include_object": include_object})
        diffs = compare_metadata(context, metadata)
        sa.rollback()
    return diffs


def reset(conn: psycopg.Connection) -> None:
    """Drop every table and view of ours, data included. For tests and ``workbench reset``."""
    require_idle(conn, "reset the database")
    with storage_errors("cannot reset the database"), _locked(conn), conn.transaction():
        conn.execute("DROP VIEW IF EXISTS " + ", ".join(VIEWS))
        conn.execute("DROP TABLE IF EXISTS " + ", ".join(_OBJECTS) + " CASCADE")
        conn.execute("DROP FUNCTION IF EXISTS " + ", ".join(_FUNCTIONS) + " CASCADE")
    # A BatchWriter of this connection that outlives the reset finds its known partition days
    # stale on its next write, forgets them and retries (as after another's retention).


def _current(sa: Connection) -> str | None:
    current = MigrationContext.configure(sa).get_current_revision()
    sa.commit()  # end the reading transaction: each revision runs in its own
    return current


def _legacy_version(sa: Connection) -> int | None:
    exists = sa.exec_driver_sql("SELECT to_regclass('schema_migrations')").scalar()
    if exists is None:
        return None
    return sa.exec_driver_sql("SELECT max(version) FROM schema_migrations").scalar()


def _stamp_legacy(sa: Connection) -> str | None:
    """Stamp a database of the old runner at its revision; that revision, or None."""
    version = _legacy_version(sa)
    if version is None:
        sa.rollback()
        return None
    if version < 4:  # a partial wave-1 history: complete it the old way, then stamp 0001
        missing = [m.version for m in legacy.MIGRATIONS if version < m.version <= 4]
        sa.exec_driver_sql(legacy.sql(*missing))
        version = 4
    revision = LEGACY_REVISIONS[min(version, max(LEGACY_REVISIONS))]
    command.stamp(config(sa), revision)  # inside this transaction: it runs on ``sa``
    sa.exec_driver_sql("DROP TABLE schema_migrations")
    sa.commit()
    return revision


@contextlib.contextmanager
def _alembic(conn: psycopg.Connection) -> Iterator[Connection]:
    """A SQLAlchemy connection over the caller's psycopg connection (Alembic needs one).

    The session is the caller's, so the advisory lock it holds covers the migrations. It is
    switched out of autocommit (SQLAlchemy and Alembic delimit the transactions themselves)
    and given back as it was, idle. The throwaway engine is never disposed: disposing would
    close the caller's connection.
    """
    # Alembic narrates every run at INFO ("Context impl PostgresqlImpl."...); the callers log
    # what was applied themselves, and a CLI error must stay one line.
    logger = logging.getLogger("alembic")
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    autocommit = conn.autocommit
    conn.autocommit = False
    engine = create_engine("postgresql+psycopg://", creator=lambda: conn, poolclass=StaticPool)
    try:
        with engine.connect() as sa:
            yield sa
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        conn.autocommit = autocommit


class _locked:
    """Hold the session-level migration lock for the duration of the block.

    Raw psycopg: an advisory lock belongs to one session, the caller's, not to a pool.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        _end_implicit_transaction(self.conn)

    def __exit__(self, *exc: object) -> None:
        try:
            if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self.conn.rollback()
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
            _end_implicit_transaction(self.conn)
        except psycopg.Error:
            pass  # the connection is gone; so is its lock


def _end_implicit_transaction(conn: psycopg.Connection) -> None:
    # A non-autocommit connection opened a transaction for a plain SELECT; close it so the
    # caller gets the connection back idle.
    if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
        conn.commit()
