"""Connecting to PostgreSQL, and turning driver errors into one-line :class:`StorageError`.

The DSN comes from, in order: an explicit URL (e.g. the ``--database-url`` option), a
``WORKBENCH_DATABASE_URL`` entry, or the standard libpq variables (``PGHOST``, ``PGPORT``,
``PGUSER``, ``PGDATABASE``, ``PGPASSWORD``...). The caller passes the environment in as a
mapping: nothing here reads ``os.environ``.

>>> resolve_dsn({"PGHOST": "db", "PGPORT": "5433", "PGUSER": "fraud"})
'host=db port=5433 user=fraud'
>>> resolve_dsn({}) is None
True
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Iterator, Mapping

import psycopg
import sqlalchemy.exc
from psycopg import conninfo

from workbench.errors import DatabaseUnavailable, DataRefused, SchemaError, StorageError
from workbench.storage.dsn import reveals, scrub

URL_VARIABLE = "WORKBENCH_DATABASE_URL"

# libpq variable -> connection parameter; the ones that say *where* the database is.
PG_VARIABLES = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGDATABASE": "dbname",
    "PGPASSWORD": "password",
    "PGPASSFILE": "passfile",
    "PGSERVICE": "service",
    "PGSSLMODE": "sslmode",
    "PGOPTIONS": "options",
    "PGAPPNAME": "application_name",
    "PGCONNECT_TIMEOUT": "connect_timeout",
}


def resolve_dsn(environ: Mapping[str, str], url: str | None = None) -> str | None:
    """The DSN to use, or ``None`` when nothing is configured (start an embedded server).

    ``url`` (explicit) wins over ``environ["WORKBENCH_DATABASE_URL"]``, which wins over the
    libpq ``PG*`` variables found in ``environ``.
    """
    for candidate in (url, environ.get(URL_VARIABLE)):
        if candidate and candidate.strip():
            return candidate.strip()
    params = {key: environ[var] for var, key in PG_VARIABLES.items() if environ.get(var)}
    if not params:
        return None
    return conninfo.make_conninfo(**params)


def describe(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, for messages (never the password)."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid DSN>"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    where = f"{host}:{port}"
    if params.get("dbname"):
        where += f"/{params['dbname']}"
    return where


def connect(dsn: str, *, autocommit: bool = True, connect_timeout: int = 10) -> psycopg.Connection:
    """A new connection; raises :class:`StorageError` with one readable line on failure.

    Connections are autocommit by default: every storage function that writes opens its own
    transaction, so nothing is left idle in a transaction between calls.
    """
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:  # libpq may quote the password back: scrubbed
        raise StorageError(f"invalid PostgreSQL DSN: {scrub(one_line(exc), dsn)}") from (
            None if reveals(str(exc), dsn) else exc
        )
    extra: dict[str, str | int | None] = {
        "connect_timeout": connect_timeout,
        "application_name": "workbench",
    }
    extra = {key: value for key, value in extra.items() if key not in params}
    try:
        return psycopg.connect(conninfo.make_conninfo(dsn, **extra), autocommit=autocommit)
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {describe(dsn)}: {scrub(one_line(exc), dsn)}"
        ) from (None if reveals(str(exc), dsn) else exc)


async def connect_async(dsn: str, *, autocommit: bool = True) -> psycopg.AsyncConnection:
    """Like :func:`connect`, for asyncio code (e.g. a LISTEN hub)."""
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=autocommit, application_name="workbench"
        )
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {describe(dsn)}: {scrub(one_line(exc), dsn)}"
        ) from (None if reveals(str(exc), dsn) else exc)


class Failure(enum.Enum):
    """What a failed statement means for the caller, by SQLSTATE (see :func:`classify`)."""

    TRANSIENT = "transient"  # pause, reconnect, retry the same work
    DATA = "data"  # some rows were refused for their values: isolate them
    FATAL = "fatal"  # the code or the schema is wrong: stop


# SQLSTATE classes (first two characters) and codes, per PostgreSQL's errcodes appendix.
_TRANSIENT_CLASSES = frozenset({"08", "53"})  # connection exception, insufficient resources
_TRANSIENT_CODES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
        "57P05",  # idle_session_timeout: the server closed the session
        "25P03",  # idle_in_transaction_session_timeout: the server closed the session
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
        # query_canceled: a statement_timeout or an administrator's pg_cancel_backend. Both
        # say "not now" rather than "never": the work is retried (with backoff, logged each
        # time). We set no statement_timeout ourselves, so one that fires on every attempt is
        # an operator's setting, visible in the log's repeated warning.
        "57014",
    }
)
_DATA_CLASSES = frozenset(
    {
        "22",  # data exception: a value out of range, too long, invalid text...
        "23",  # integrity constraint violation: NOT NULL, CHECK, unique, foreign key
        "54",  # program limit exceeded: e.g. an index row larger than a third of a page
    }
)


def classify(exc: BaseException) -> Failure:
    """What a driver error means, from its SQLSTATE rather than its exception class.

    PostgreSQL raises "index row size exceeds maximum" (54000) as an ``OperationalError``
    subclass, like a lost connection; only the SQLSTATE tells "retry" from "refused".
    An error without a SQLSTATE is the client's own: a broken or closed connection
    (``OperationalError``/``InterfaceError``) is transient, anything else is fatal.

    >>> classify(psycopg.errors.ProgramLimitExceeded())
    <Failure.DATA: 'data'>
    >>> classify(psycopg.errors.AdminShutdown())
    <Failure.TRANSIENT: 'transient'>
    >>> classify(psycopg.errors.UndefinedColumn())
    <Failure.FATAL: 'fatal'>
    >>> classify(psycopg.OperationalError("the connection is closed"))
    <Failure.TRANSIENT: 'transient'>
    """
    code = getattr(exc, "sqlstate", None)
    if not code:
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return Failure.TRANSIENT
        return Failure.FATAL
    if code in _TRANSIENT_CODES or code[:2] in _TRANSIENT_CLASSES:
        return Failure.TRANSIENT
    if code[:2] in _DATA_CLASSES:
        return Failure.DATA
    return Failure.FATAL


def unavailable(exc: BaseException) -> bool:
    """True for driver errors that mean "try again later" (see :func:`classify`)."""
    return classify(exc) is Failure.TRANSIENT


def translate(exc: psycopg.Error, action: str) -> StorageError:
    """The :class:`StorageError` subclass for a driver error, with one readable line:
    :class:`DatabaseUnavailable`, :class:`DataRefused` (with its SQLSTATE) or
    :class:`SchemaError`."""
    reason = one_line(exc)
    message = f"{action}: {reason}"
    kind = classify(exc)
    if kind is Failure.TRANSIENT:
        return DatabaseUnavailable(message)
    if kind is Failure.DATA:
        return DataRefused(message, sqlstate=exc.sqlstate, reason=reason)
    return SchemaError(message)


_PREFIXES = re.compile(r"^(connection failed|connection is bad):\s*", re.IGNORECASE)
_SEVERITY = re.compile(r"^(FATAL|ERROR|PANIC):\s+")


def one_line(exc: BaseException) -> str:
    """The useful part of a driver message, on one line.

    'connection failed: connection to server at "127.0.0.1", port 5433 failed: Connection
    refused\\n\\tIs the server running...' becomes 'connection refused'.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = _PREFIXES.sub("", text)
    if " failed: " in text:  # libpq: 'connection to server at ... failed: <reason>'
        text = text.rsplit(" failed: ", 1)[1]
    text = _SEVERITY.sub("", text).strip()
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Re-raise driver errors inside the block as ``StorageError("<action>: <reason>")``, of
    the subclass their SQLSTATE calls for (:func:`translate`)."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, action) from exc
    except sqlalchemy.exc.DBAPIError as exc:  # SQLAlchemy wraps the driver's error
        if isinstance(exc.orig, psycopg.Error):
            raise translate(exc.orig, action) from exc
        raise StorageError(f"{action}: {one_line(exc.orig or exc)}") from exc


def usable(conn: psycopg.Connection) -> bool:
    """True when ``conn`` is open and idle (e.g. after a refused write rolled back)."""
    return not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def require_idle(conn: psycopg.Connection, action: str) -> None:
    """Refuse to run ``action`` inside a transaction the caller left open."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise StorageError(
            f"cannot {action}: the connection is inside a transaction "
            "(commit or roll back first, or use an autocommit connection)"
        )


@contextlib.contextmanager
def reading(conn: psycopg.Connection) -> Iterator[None]:
    """Leave a non-autocommit connection as idle as it was before a read.

    A plain SELECT on such a connection opens a transaction; left open it holds a snapshot
    (and blocks retention's DETACH) until the caller commits. A transaction the caller had
    already opened is left alone.
    """
    was_idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    yield
    if (
        was_idle
        and not conn.autocommit
        and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    ):
        conn.commit()
