"""PostgreSQL storage: the only package that speaks SQL or imports the driver (psycopg 3).

Modules, one per noun:

- :mod:`~workbench.storage.store`       ``Store``: one pooled SQLAlchemy engine per database and
  process (``shared_store``), the source every read function takes;
- :mod:`~workbench.storage.connection`  DSN from settings/libpq variables, ``connect``,
  driver errors → one-line :class:`~workbench.errors.StorageError`;
- :mod:`~workbench.storage.tables`      every table declared once (SQLAlchemy Core ``metadata``);
- :mod:`~workbench.storage.migrations`  Alembic migrations (``upgrade``, ``status``, ``reset``);
- :mod:`~workbench.storage.partitions`  daily partitions of ``transactions``, retention;
- :mod:`~workbench.storage.writer`      ``write_batch``: one transaction per scored batch;
- :mod:`~workbench.storage.alerting`    set-based alert opening/attaching inside that write;
- :mod:`~workbench.storage.notify`      the < 8000-byte ``pg_notify`` batch summary;
- :mod:`~workbench.storage.listen`      ``Listener``: LISTEN for those summaries;
- :mod:`~workbench.storage.queries`     read API returning pandas DataFrames.

Importing this package connects to nothing.
"""

from workbench.storage.connection import connect, connect_async, describe, resolve_dsn
from workbench.storage.listen import Listener
from workbench.storage.migrations import MIGRATIONS, reset, status, upgrade
from workbench.storage.notify import CHANNEL, BatchSummary, HighRow
from workbench.storage.partitions import ensure_partitions, list_partitions, retention
from workbench.storage.queries import (
    alert_hits,
    alerts,
    bucketed,
    card_history,
    counts,
    dead_letters,
    last_rule_set,
    load_hits,
    load_transactions,
    open_alert_count,
    pipeline_totals,
    recent_transactions,
    record_rule_set,
    rule_set_files,
    rule_set_history,
    set_disposition,
    time_bounds,
    transaction,
)
from workbench.storage.store import Store
from workbench.storage.store import shared as shared_store
from workbench.storage.writer import BatchWriter, PreparedBatch, WriteResult, write_batch

__all__ = [
    "CHANNEL",
    "MIGRATIONS",
    "BatchSummary",
    "BatchWriter",
    "HighRow",
    "Listener",
    "PreparedBatch",
    "Store",
    "WriteResult",
    "alert_hits",
    "alerts",
    "bucketed",
    "card_history",
    "connect",
    "connect_async",
    "counts",
    "dead_letters",
    "describe",
    "ensure_partitions",
    "last_rule_set",
    "list_partitions",
    "load_hits",
    "load_transactions",
    "open_alert_count",
    "pipeline_totals",
    "recent_transactions",
    "record_rule_set",
    "reset",
    "resolve_dsn",
    "retention",
    "rule_set_files",
    "rule_set_history",
    "set_disposition",
    "shared_store",
    "status",
    "time_bounds",
    "transaction",
    "upgrade",
    "write_batch",
]
