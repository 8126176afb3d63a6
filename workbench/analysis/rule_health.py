"""Rule health and capacity-aware thresholds over stored history (the notebooks' API).

The arithmetic is :mod:`workbench.scoring.health` (shared with the dashboard's Rules page;
its docstring states the drift rule, the never/always-fires rule, the overlap and the
capacity definitions); this module reads its inputs from the database, aggregated in
PostgreSQL (:mod:`workbench.storage.rule_fires`), over the last days of event time up to the
stream's *now*. Plots are the dashboard's (:mod:`workbench.dashboard.rule_health_page`).

>>> # from workbench.analysis import capacity, health
>>> # h = health(days=14, rule_ids=[r.id for r in ruleset.rules])
>>> # h.status[h.status.status != "ok"]; h.alarms; h.overlap
>>> # rec = capacity(50, truth="simulator"); print(rec.text()); tradeoff_plots(rec)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from workbench.analysis.backtest import _connection
from workbench.dashboard.rule_health_page import fire_rate_plot, overlap_plot, tradeoff_plots
from workbench.scoring.health import (
    TRUTHS,
    Health,
    Recommendation,
    assess,
    card_days_of,
    counts_from_hits,
    drift,
    fire_rates,
    fire_status,
    overlap,
    overlap_from_pairs,
    recommend,
    tradeoff,
)
from workbench.storage import rule_fires

__all__ = [
    "TRUTHS",
    "Health",
    "Recommendation",
    "capacity",
    "card_days_of",
    "counts_from_hits",
    "drift",
    "fire_rate_plot",
    "fire_rates",
    "fire_status",
    "health",
    "overlap",
    "overlap_from_pairs",
    "overlap_plot",
    "recommend",
    "tradeoff",
    "tradeoff_plots",
]


def health(
    *,
    days: int = 14,
    status_days: int = 7,
    rule_ids: Sequence[str] | None = None,
    bucket: timedelta = timedelta(days=1),
    dsn: str | None = None,
    conn=None,
    **drift_options,
) -> Health:
    """Rule health of the last ``days`` of stored history, bucketed by ``bucket`` (``rule_ids``:
    the active set's rules, so that a rule that never hit is listed; ``drift_options``: see
    :func:`~workbench.scoring.health.drift`)."""
    with _connection(conn, dsn) as c:
        start, end = rule_fires.span(c, days)
        counts = rule_fires.fire_counts(c, start, end, bucket)
        pairs = rule_fires.co_hits(c, start, end)
    return assess(
        counts, pairs, rule_ids, start=start, end=end, status_days=status_days, **drift_options
    )


def capacity(
    budget: int,
    *,
    days: int = 7,
    truth: str = "simulator",
    thresholds: Sequence[float] | None = None,
    dsn: str | None = None,
    conn=None,
) -> Recommendation:
    """:func:`~workbench.scoring.health.recommend` on the stored (live) scores of the last
    ``days``: the threshold for an alert budget of ``budget`` cards a day."""
    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {', '.join(TRUTHS)}, got {truth!r}")
    with _connection(conn, dsn) as c:
        start, end = rule_fires.span(c, days)
        cd = rule_fires.card_days(c, start, end)
    return recommend(cd, budget, truth=truth, thresholds=thresholds)
