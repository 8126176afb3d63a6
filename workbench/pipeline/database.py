"""Which PostgreSQL a command uses: the configured one, or an embedded one under .workbench/.

The embedded server is shared by every command run in the same directory: a command attaches
to the running server (``workbench up``'s, say) and leaves it running; a command that finds
none starts one for its own duration. The last command using it stops it (see
:mod:`workbench.storage.embedded`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import ConfigError
from workbench.settings import Settings
from workbench.storage import connect, describe, resolve_dsn, upgrade

log = logging.getLogger(__name__)

ROOT = Path(".workbench")


@contextmanager
def database(
    settings: Settings,
    *,
    root: Path = ROOT,
    migrate: bool = True,
) -> Iterator[str]:
    """Yield a DSN of a reachable, migrated database.

    ``WORKBENCH_DATABASE_URL`` or the libpq ``PG*`` variables select a server; with neither,
    the embedded PostgreSQL under ``root`` is attached to, or started, and released on exit
    (stopped only if no other process uses it).
    """
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
                applied = upgrade(conn)
                if applied:
                    log.info("applied migrations %s", applied)
        yield dsn
    finally:
        if embedded is not None:
            embedded.release()


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
