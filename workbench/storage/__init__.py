"""PostgreSQL storage: the only package that speaks SQL or imports the driver (psycopg 3).

Modules, one per noun:

- :mod:`~workbench.storage.store`       ``Store``: one pooled SQLAlchemy engine per database and
  process (``shared_store``), the source every read function takes, with one attribute per
  noun below (``store.transactions.recent()``, ``store.alerts.page()``, ...);
- :mod:`~workbench.storage.connection`  DSN from settings/libpq variables, ``connect``,
  driver errors → one-line :class:`~workbench.errors.StorageError`;
- :mod:`~workbench.storage.tables`      every table declared once (SQLAlchemy Core ``metadata``);
- :mod:`~workbench.storage.migrations`  Alembic migrations (``upgrade``, ``status``, ``reset``);
- :mod:`~workbench.storage.partitions`  daily partitions of ``transactions``, retention;
- :mod:`~workbench.storage.writer`      ``BatchWriter`` (one per connection) and the one-shot
  ``write_batch``: one transaction per scored batch;
- :mod:`~workbench.storage.alerting`    set-based alert opening/attaching inside that write;
- :mod:`~workbench.storage.notify`      the < 8000-byte ``pg_notify`` batch summary;
- :mod:`~workbench.storage.listen`      ``Listener``: LISTEN for those summaries;
- :mod:`~workbench.storage.transactions` stored transactions: pages, card history, buckets,
  bulk loads (COPY), the stream position;
- :mod:`~workbench.storage.alerts`      the alert queue, an alert's hits, dispositions;
- :mod:`~workbench.storage.labels`      labels from dispositions and chargeback files
  (:mod:`~workbench.storage.label_import`), rule precision from them;
- :mod:`~workbench.storage.cases`       the case queue (keyset pages, bounded counts),
  claims, notes, closing a case with its alerts;
- :mod:`~workbench.storage.rule_sets`   rule-set loads: record, publish (NOTIFY), history;
- :mod:`~workbench.storage.shadow`      the challenger rule set, its stored scores, promotion;
- :mod:`~workbench.storage.dead_letters` records that could not be stored;
- :mod:`~workbench.storage.stats`       row counts and pipeline totals;
- :mod:`~workbench.storage.frames`      what those share: sources, typed frames, COPY out.

The package re-exports the names other layers use (``recent_transactions``, ``counts``, ...);
``alerts`` and ``dead_letters`` are the modules (use ``alerts.page``, ``dead_letters.recent``).

Importing this package connects to nothing.
"""

from workbench.storage import (
    alerts,
    audit,
    cases,
    dead_letters,
    labels,
    rule_sets,
    shadow,
    stats,
    transactions,
)
from workbench.storage.alerts import hits as alert_hits
from workbench.storage.alerts import open_count as open_alert_count
from workbench.storage.alerts import set_disposition
from workbench.storage.connection import connect, connect_async, describe, resolve_dsn
from workbench.storage.listen import Listener
from workbench.storage.migrations import MIGRATIONS, reset, status, upgrade
from workbench.storage.notify import CHANNEL, BatchSummary, HighRow
from workbench.storage.partitions import ensure_partitions, list_partitions, retention
from workbench.storage.rule_sets import files as rule_set_files
from workbench.storage.rule_sets import history as rule_set_history
from workbench.storage.rule_sets import last as last_rule_set
from workbench.storage.rule_sets import record as record_rule_set
from workbench.storage.stats import counts, pipeline_totals
from workbench.storage.store import Store
from workbench.storage.store import shared as shared_store
from workbench.storage.transactions import bucketed, card_history, load_hits, time_bounds
from workbench.storage.transactions import get as transaction
from workbench.storage.transactions import load as load_transactions
from workbench.storage.transactions import recent as recent_transactions
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
    "audit",
    "bucketed",
    "card_history",
    "cases",
    "connect",
    "connect_async",
    "counts",
    "dead_letters",
    "describe",
    "ensure_partitions",
    "labels",
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
    "rule_sets",
    "set_disposition",
    "shadow",
    "shared_store",
    "stats",
    "status",
    "time_bounds",
    "transaction",
    "transactions",
    "upgrade",
    "write_batch",
]
