"""Labels from a notebook: the analysts' (and chargebacks') verdicts, and rule precision.

Two ground truths are kept apart and named everywhere: **simulator truth** (the
transactions' ``is_fraud``) and **analyst labels** (``labels`` of source ``analyst``, written
by dispositions; ``chargeback`` and other sources come from ``workbench labels import``).
A backtest's :class:`~workbench.analysis.compare.Comparison` gives precision and recall
against each (``truths``); these read the labels themselves.

>>> # from workbench.analysis import current_labels, rule_precision
>>> # rule_precision("2026-01-01", "2026-01-08")                 # per rule, analyst labels
>>> # rule_precision(label_source="chargeback")                  # ... or chargebacks
>>> # current_labels()["label"].value_counts()
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from workbench.analysis.database import database_url
from workbench.storage import labels, shared_store

__all__ = ["current_labels", "rule_precision"]


def rule_precision(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    label_source: str = labels.ANALYST,
    dsn: str | None = None,
    conn=None,
) -> pd.DataFrame:
    """Per rule id, over transactions with ``start <= ts < end`` (event time; naive = UTC):
    hits carrying a current ``label_source`` label (``labelled``), ``fraud``, ``legitimate``
    and ``precision`` = fraud / labelled."""
    source = conn if conn is not None else shared_store(dsn or database_url())
    return labels.precision(source, _utc(start), _utc(end), label_source=label_source)


def current_labels(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    label_source: str = labels.ANALYST,
    dsn: str | None = None,
    conn=None,
) -> pd.DataFrame:
    """The current label of each labelled transaction with ``start <= ts < end``: tx_id, ts,
    label, known_at (event time), actor, alert_id."""
    source = conn if conn is not None else shared_store(dsn or database_url())
    return labels.current(source, _utc(start), _utc(end), label_source=label_source)


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
