"""Which PostgreSQL a command uses: the configured one, or an embedded one under .workbench/.

The embedded server is shared by every command run in the same directory: a command attaches
to the running server (``workbench up``'s, say) and leaves it running; a command that finds
none starts one for its own duration. The last command using it stops it (see
:mod:`workbench.storage.embedded`).

Components connect with their own least-privilege roles (:mod:`workbench.storage.roles`):
``database(settings, component="pipeline")`` yields ``WORKBENCH_PIPELINE_DATABASE_URL`` when
it is set (``workbench up`` sets it for its worker), after checking that its schema is
current — such a role cannot migrate, and nothing tries: a database behind the code is one
clear line, "run `workbench db upgrade` as the owner". :func:`component_roles` makes the
roles (``workbench db roles``, ``workbench up``) with the owner's DSN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import ConfigError, StorageError
from workbench.settings import Settings
from workbench.storage import connect, describe, resolve_dsn, status, upgrade

log = logging.getLogger(__name__)

ROOT = Path(".workbench")


@contextmanager
def database(
    settings: Settings,
    *,
    root: Path = ROOT,
    migrate: bool = True,
    component: str | None = None,
) -> Iterator[str]:
    """Yield a DSN of a reachable, migrated database.

    ``WORKBENCH_DATABASE_URL`` or the libpq ``PG*`` variables select a server; with neither,
    the embedded PostgreSQL under ``root`` is attached to, or started, and released on exit
    (stopped only if no other process uses it). With ``component`` ("pipeline",
    "dashboard", "publisher") and its ``<component>_database_url`` setting, that URL, checked
    to be current, instead (it starts nothing).
    """
    override = getattr(settings, f"{component}_database_url", "") if component else ""
    if override:
        _check_no_stray_password(settings, override, component or "")
        with connect(override) as conn:
            _require_current(conn)
        yield override
        return
    dsn = resolve_dsn(settings.libpq, settings.database_url or None)
    embedded = None
    if dsn is None:
        from workbench.storage.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(root)
        dsn = embedded.start()
        log.info(
            "embedded PostgreSQL at %s (data in %s, %s)",
            describe(dsn),
            root / "pg",
            "started here" if embedded.started_here else "attached",
        )
    try:
        if migrate:
            with connect(dsn) as conn:
                if _pending(conn):  # a current schema takes no lock and no DDL
                    try:
                        applied = upgrade(conn)
                    except StorageError as exc:
                        if _sqlstate(exc) != "42501":
                            raise
                        _require_current(conn)
                        raise
                    log.info("applied migrations %s", applied)
        yield dsn
    finally:
        if embedded is not None:
            embedded.release()


def component_roles(settings: Settings, admin_dsn: str, *, root: Path = ROOT) -> list:
    """Create or update the components' roles with the owner's ``admin_dsn``
    (:func:`workbench.storage.roles.ensure`); their passwords go to ``root/pgpass`` (0600),
    which their DSNs name. The embedded server's entries hold for any port (it may change)."""
    from workbench.storage.credentials import PGPASS, PasswordFile
    from workbench.storage.roles import ensure

    return ensure(admin_dsn, PasswordFile(root / PGPASS), any_port=not settings.database_configured)


def _check_no_stray_password(settings: Settings, dsn: str, component: str) -> None:
    """libpq prefers ``PGPASSWORD`` to the password file a role's DSN names: it would send
    another user's password (the owner's, in a container set up with libpq variables)."""
    from psycopg import conninfo

    params = conninfo.conninfo_to_dict(dsn)
    if "PGPASSWORD" in settings.libpq and not params.get("password"):
        raise ConfigError(
            f"PGPASSWORD is set, and libpq would send it for {params.get('user') or 'the'} "
            f"role of WORKBENCH_{component.upper()}_DATABASE_URL instead of the password in "
            f"{params.get('passfile') or 'its password file'}: unset PGPASSWORD for this "
            "component"
        )


def _pending(conn) -> list[str]:
    return [m.revision for m in status(conn) if not m.applied]


def _require_current(conn) -> None:
    """Raise a one-line :class:`ConfigError` when the schema is behind the code."""
    pending = _pending(conn)
    if pending:
        raise ConfigError(
            f"the database schema at {_where(conn)} lacks revision(s) "
            f"{', '.join(pending)} and {conn.info.user} may not change it: run "
            "`workbench db upgrade` as the owner"
        )


def _where(conn) -> str:
    return f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) or getattr(
        getattr(cause, "orig", None), "sqlstate", None
    )


def database_url(settings: Settings, *, root: Path = ROOT) -> str:
    """The URL of the database commands would use, without its password; starts nothing.

    The configured one when set; else the running embedded server under ``root``. Raises
    :class:`ConfigError` when neither is there.
    """
    from workbench.storage.dsn import public_url

    dsn = resolve_dsn(settings.libpq, settings.database_url or None)
    if dsn is not None:
        return public_url(dsn)
    from workbench.storage.embedded import EmbeddedPostgres

    running = EmbeddedPostgres(root).running_dsn()
    if running is None:
        raise ConfigError(
            f"no database configured and no embedded PostgreSQL running under {root}/: "
            "start `workbench up` here, or set WORKBENCH_DATABASE_URL"
        )
    return running
