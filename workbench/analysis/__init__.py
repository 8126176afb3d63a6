"""Analysis: the notebooks' and the ``backtest`` command's API over stored history.

Layer "analysis" sits above the dashboard and below the CLI; nothing in the core imports it.

- :mod:`~workbench.analysis.backtest`  re-score stored history with a candidate rule set,
  using the stream's own feature and scoring code (point-in-time, label delay included);
- :mod:`~workbench.analysis.metrics`   precision / recall / F1 per rule, band and scenario,
  band migration, alerts per day, Card Precision@k, threshold sweep (plain functions);
- :mod:`~workbench.analysis.compare`   all of those for candidate against live, as tables,
  a text report or JSON;
- :mod:`~workbench.analysis.live`      a small pipeline plus the dashboard's live view,
  running inside a notebook kernel for a bounded time.

Notebooks find their database with :func:`database_url` (the CLI's way: the configured URL,
else the embedded server that ``workbench up`` runs in this directory or a parent) and read it
through :func:`connect`. Importing this package connects to nothing and starts nothing.

>>> # from workbench.analysis import backtest, database_url, load_history
>>> # dsn = database_url()                                          # as `workbench db url`
>>> # history = load_history("2026-01-01", "2026-01-08")          # COPY -> pandas
>>> # result = backtest("rules/", "2026-01-01", "2026-01-08")       # candidate vs live
>>> # print(result.compare(k=100).text())
"""

from workbench.analysis.backtest import (
    Backtest,
    as_ruleset,
    backtest,
    default_dsn,
    live_hits,
    load_history,
    lookback_s,
)
from workbench.analysis.compare import Comparison, compare


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


__all__ = [
    "Backtest",
    "Comparison",
    "as_ruleset",
    "backtest",
    "compare",
    "connect",
    "database_url",
    "default_dsn",
    "live_hits",
    "load_history",
    "lookback_s",
]
