"""Which database the analysis API reads: found the way the CLI finds it.

:func:`database_url` is what every analysis function uses when it is given neither a
connection nor a DSN (``load_history``, ``backtest``), so a notebook needs no configuration
next to a running ``workbench up``.
"""

from __future__ import annotations


def database_url(settings=None, *, start=None) -> str:
    """The database a notebook uses, found the way the CLI finds it.

    ``WORKBENCH_DATABASE_URL`` or the libpq ``PG*`` variables when set (``workbench lab`` sets
    the URL for its kernels); else the embedded PostgreSQL running under ``.workbench/`` of
    ``start`` (default: the current directory) or of its nearest parent that has one, so a
    notebook opened in ``notebooks/`` reaches the server ``workbench up`` started in the
    project. Starts nothing; raises :class:`~workbench.errors.ConfigError` when neither is
    there. Unlike ``workbench db url`` the result keeps its password: it is for connecting.
    """
    from pathlib import Path

    from workbench.errors import ConfigError
    from workbench.settings import Settings
    from workbench.storage import resolve_dsn

    settings = settings or Settings.load()
    dsn = resolve_dsn(settings.libpq, settings.database_url or None)
    if dsn is not None:
        return dsn
    from workbench.pipeline.database import ROOT
    from workbench.storage.embedded import EmbeddedPostgres

    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ROOT).is_dir():
            running = EmbeddedPostgres(folder / ROOT).running_dsn()
            if running is not None:
                return running
    raise ConfigError(
        f"no database configured and no embedded PostgreSQL running under {here} or a parent: "
        "start `workbench up` (or `workbench lab`) there, or set WORKBENCH_DATABASE_URL"
    )


def connect(dsn: str | None = None):
    """A new autocommit connection to :func:`database_url` (or ``dsn``); close it after use
    (``with connect() as conn: ...``)."""
    from workbench.storage import connect as storage_connect

    return storage_connect(dsn or database_url())
