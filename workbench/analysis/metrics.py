"""Detection metrics over scored history (see :mod:`workbench.scoring.metrics`).

The functions are pure numpy/pandas and live in the scoring layer, so that the dashboard's
rule editor can use them too (the dashboard sits below analysis in the import order); this
module keeps the analysis API (``from workbench.analysis import metrics as m``) unchanged.
"""

from workbench.scoring.metrics import (
    CP_PROTOCOLS,
    alert_sessions,
    alerts_per_day,
    band_metrics,
    band_migration,
    card_precision,
    card_precision_at_k,
    card_precision_handbook,
    day_of,
    labels,
    rates,
    rule_metrics,
    scenario_metrics,
    summary,
    threshold_sweep,
)

__all__ = [
    "CP_PROTOCOLS",
    "alert_sessions",
    "alerts_per_day",
    "band_metrics",
    "band_migration",
    "card_precision",
    "card_precision_at_k",
    "card_precision_handbook",
    "day_of",
    "labels",
    "rates",
    "rule_metrics",
    "scenario_metrics",
    "summary",
    "threshold_sweep",
]
