"""Analysis: the notebooks' and the ``backtest`` command's API over stored history.

Layer "analysis" sits above the dashboard and below the CLI; nothing in the core imports it.

- :mod:`~workbench.analysis.backtest`  re-score stored history with a candidate rule set,
  using the stream's own feature and scoring code (point-in-time, label delay included);
- :mod:`~workbench.analysis.metrics`   precision / recall / F1 per rule, band and scenario,
  band migration, alerts per day, Card Precision@k, threshold sweep (plain functions);
- :mod:`~workbench.analysis.compare`   all of those for candidate against live, as tables,
  a text report or JSON;
- :mod:`~workbench.analysis.live`      a small pipeline plus the dashboard's live view,
  running inside a notebook kernel for a bounded time;
- :mod:`~workbench.analysis.labels`    :func:`rule_precision` and :func:`current_labels`:
  analysts' verdicts (kept apart from simulator truth) and each rule's precision from them;
- :mod:`~workbench.analysis.shadow`    :func:`shadow_compare`: the active rule set against the
  challenger scored in its shadow on live traffic (band migration, hits, precision);
- module :mod:`~workbench.analysis.rule_health`: :func:`health` (fire rates, drift alarms,
  never/always-firing rules, overlaps) and :func:`capacity` (the score threshold that fits an
  alert budget, with its trade-off curve);
- :mod:`~workbench.analysis.drafts`    rule drafts from a notebook: written beside the live
  rules, reviewed (diff against the active set, backtest), published only through the
  reviewed, audited publish path;
- :mod:`~workbench.analysis.audit`     :func:`audit_log`: the audit trail (who published,
  rolled back, disposed of or was refused what, and when) as a DataFrame, newest first.

Notebooks find their database with :func:`database_url` (the CLI's way: the configured URL,
else the embedded server that ``workbench up`` runs in this directory or a parent) and read it
through :func:`connect`. Importing this package connects to nothing and starts nothing.

>>> # from workbench.analysis import backtest, database_url, load_history
>>> # dsn = database_url()                                          # as `workbench db url`
>>> # history = load_history("2026-01-01", "2026-01-08")          # COPY -> pandas
>>> # result = backtest("rules/", "2026-01-01", "2026-01-08")       # candidate vs live
>>> # print(result.compare(k=100).text())
>>> # audit_log(since="2026-01-01", action="rules.")              # who changed the rules
"""

from workbench.analysis.audit import audit_log
from workbench.analysis.backtest import (
    Backtest,
    as_ruleset,
    backtest,
    live_hits,
    load_history,
    lookback_s,
)
from workbench.analysis.compare import Comparison, compare
from workbench.analysis.database import connect, database_url
from workbench.analysis.labels import current_labels, rule_precision
from workbench.analysis.rule_health import capacity, health
from workbench.analysis.shadow import ShadowComparison, shadow_compare

__all__ = [
    "Backtest",
    "Comparison",
    "ShadowComparison",
    "as_ruleset",
    "audit_log",
    "backtest",
    "capacity",
    "compare",
    "connect",
    "current_labels",
    "database_url",
    "health",
    "live_hits",
    "load_history",
    "lookback_s",
    "rule_precision",
    "shadow_compare",
]
