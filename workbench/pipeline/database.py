"""Which PostgreSQL the worker uses: the configured one, or an embedded one under .workbench/."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.settings import Settings
from workbench.storage import connect, describe, resolve_dsn, upgrade

log = logging.getLogger(__name__)


@contextmanager
def database(
    settings: Settings,
    *,
    root: Path = Path(".workbench"),
    migrate: bool = True,
    stop_embedded: bool = True,
) -> Iterator[str]:
    """Yield a DSN of a reachable, migrated database.

    ``WORKBENCH_DATABASE_URL`` or the libpq ``PG*`` variables select a server; with neither,
    an embedded PostgreSQL is started under ``root`` (and stopped on exit when
    ``stop_embedded``).
    """
    dsn = resolve_dsn(settings.libpq, settings.database_url or None)
    embedded = None
    if dsn is None:
        from workbench.storage.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(root)
        dsn = embedded.start()
        log.info("embedded PostgreSQL at %s (data in %s)", describe(dsn), root / "pg")
    try:
        if migrate:
            with connect(dsn) as conn:
                applied = upgrade(conn)
                if applied:
                    log.info("applied migrations %s", applied)
        yield dsn
    finally:
        if embedded is not None and stop_embedded:
            embedded.stop()
