"""Feature declarations: what a rule file's ``features:`` section may say, checked on load.

A feature is a named, point-in-time value computed for each transaction from the transactions
strictly before it (and, for label-aware features, from labels already known at its time)::

    card_tx_10m:   {agg: count, by: card_id, window: 10m}
    cust_avg_30d:  {agg: mean, of: amount, by: customer_id, window: 30d}
    card_kmh:      {agg: speed_kmh, by: card_id}
    card_new_dev:  {agg: is_new, of: device_id, by: card_id, window: 30d}
    term_fraud_28d: {agg: fraud_rate, by: terminal_id, window: 28d, label_delay: 7d}
    term_analyst_28d: {agg: fraud_rate, by: terminal_id, window: 28d, labels: analyst}
    cust_avg_30d_lag7: {agg: mean, of: amount, by: customer_id, window: 30d, ending: 7d}
    card_big_1h:   {agg: count, by: card_id, window: 1h, where: "amount > 100"}
    cust_p90_30d:  {agg: percentile, q: 0.9, of: amount, by: customer_id, window: 30d}
    cust_median_30d: {agg: median, of: amount, by: customer_id, window: 30d}
    term_since_fraud: {agg: time_since_fraud, by: terminal_id, label_delay: 7d}

``ending: E`` lags a window of width W: it holds the rows with ``t - E - W <= ts <= t - E``
(without it, ``t - W <= ts < t``); every windowed agg but ``is_new`` takes it. ``where`` keeps
only the rows for which a condition over the transaction's own columns holds (compiled by the
rule language, :mod:`workbench.rules.conditions`: the spec carries the compiled ``condition``).
``median``/``percentile`` are exact (linear interpolation between the two nearest ranks, as
``numpy.quantile``). ``time_since_fraud`` is the hours from the entity's latest known fraud
transaction (within ``window``, default 90d) to t, NaN when none is known.

``fraud_count``/``fraud_rate``/``time_since_fraud`` read one of two kinds of labels, never
both:

- without ``labels``: the batch's own ``is_fraud`` column (simulator ground truth, or a
  replayed file's), taken as known ``label_delay`` (default 7d) after the transaction;
- with ``labels: SOURCE`` (``analyst``, ``chargeback``, ...): the stored labels of that source
  (:mod:`workbench.storage.labels`), each known from its own ``known_at``
  (:mod:`workbench.features.labels`); ``label_delay`` is refused there, and ``by`` must be a
  column copied into the labels (:data:`LABEL_ENTITIES`).

Calendar features (:data:`BUILTIN`) are always available without a declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.durations import parse_duration

ENTITIES = ("card_id", "customer_id", "terminal_id", "merchant_category", "device_id")
"""Columns a feature may be grouped ``by``."""

LABEL_ENTITIES = ("card_id", "customer_id", "terminal_id", "merchant_category")
"""Columns a ``labels:`` feature may be grouped ``by`` (those each stored label carries)."""

LABEL_SOURCE = r"[a-z][a-z0-9_]{0,31}"
"""What a ``labels:`` value (a label source) looks like."""

NUMERIC_OF = ("amount",)
"""Columns that ``sum``/``mean``/``max``/``min``/``std``/``median``/``percentile`` may
aggregate."""

DISTINCT_OF = (
    "terminal_id",
    "merchant_category",
    "device_id",
    "country",
    "channel",
    "customer_id",
    "card_id",
    "currency",
)
"""Columns that ``distinct`` and ``is_new`` may look at."""

WINDOWED = (
    "count",
    "sum",
    "mean",
    "max",
    "min",
    "std",
    "distinct",
    "is_new",
    "fraud_count",
    "fraud_rate",
    "median",
    "percentile",
)
PREVIOUS = ("seconds_since_prev", "distance_km", "speed_kmh")
SINCE = ("time_since_fraud",)
AGGS = WINDOWED + PREVIOUS + SINCE

NEEDS_OF = {"sum", "mean", "max", "min", "std", "distinct", "is_new", "median", "percentile"}
LABEL_AWARE = {"fraud_count", "fraud_rate", "time_since_fraud"}
NO_ENDING = {"is_new"}  # "new" asks about everything up to now: a lag makes no sense there

MIN_WINDOW_S = 1.0
MAX_WINDOW_S = 90 * 86400.0
DEFAULT_LABEL_DELAY_S = 7 * 86400.0
DEFAULT_SINCE_WINDOW_S = MAX_WINDOW_S
MAX_CONDITIONS = 63
"""Distinct ``where`` conditions one rule set may declare (a bit each per stored row)."""

# Output type and whether the value can be missing (NaN) when there is no history.
_OUTPUT = {
    "count": ("number", False),
    "sum": ("number", False),
    "distinct": ("number", False),
    "fraud_count": ("number", False),
    "mean": ("number", True),
    "max": ("number", True),
    "min": ("number", True),
    "std": ("number", True),
    "fraud_rate": ("number", True),
    "is_new": ("bool", False),
    "seconds_since_prev": ("number", True),
    "distance_km": ("number", True),
    "speed_kmh": ("number", True),
    "median": ("number", True),
    "percentile": ("number", True),
    "time_since_fraud": ("number", True),
}

BUILTIN: dict[str, tuple[str, bool, str]] = {
    "hour": ("number", False, "Hour of day of ts, 0-23 (UTC)."),
    "day_of_week": ("number", False, "Day of week of ts, Monday=0 … Sunday=6."),
    "is_weekend": ("bool", False, "True on Saturday and Sunday."),
    "is_night": ("bool", False, "True from 00:00 to 05:59."),
}
"""Calendar features every rule may use: name -> (type, nullable, help)."""


class FeatureSpecError(ValueError):
    """A feature declaration is invalid; ``key`` names the offending key, if any."""

    def __init__(self, message: str, key: str | None = None, suggestion: str | None = None):
        super().__init__(message)
        self.key = key
        self.suggestion = suggestion


@dataclass(frozen=True)
class FeatureSpec:
    """One declared feature. ``window_s``/``ending_s``/``label_delay_s`` are seconds (0 when
    unused); ``where`` is the text of a row condition, ``condition`` its compiled form (a
    callable batch -> bool array, set by :mod:`workbench.rules`); ``q`` the quantile of a
    ``median``/``percentile``."""

    name: str
    agg: str
    by: str
    of: str | None = None
    window_s: float = 0.0
    label_delay_s: float = 0.0
    labels: str | None = None  # stored labels of this source, instead of is_fraud
    ending_s: float = 0.0
    where: str | None = None
    q: float | None = None
    condition: Callable[[Any], Any] | None = field(
        default=None, compare=False, hash=False, repr=False
    )

    @property
    def type(self) -> str:
        return _OUTPUT[self.agg][0]

    @property
    def nullable(self) -> bool:
        return _OUTPUT[self.agg][1]

    @property
    def horizon_s(self) -> float:
        """How far back this feature looks (for state eviction)."""
        return max(self.window_s + self.ending_s, self.label_delay_s)


_KEYS = {
    "agg",
    "by",
    "of",
    "window",
    "ending",
    "where",
    "q",
    "label_delay",
    "labels",
    "description",
}


def parse_feature(name: str, decl: Any) -> FeatureSpec:
    """Check one declaration from YAML and return its spec, or raise FeatureSpecError."""
    from difflib import get_close_matches

    def closest(word: str, choices) -> str | None:
        found = get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
        return found[0] if found else None

    if not isinstance(decl, dict):
        raise FeatureSpecError(
            f"feature '{name}' must be a mapping such as {{agg: count, by: card_id, window: 10m}}"
        )
    for key in decl:
        if key not in _KEYS:
            raise FeatureSpecError(
                f"unknown key '{key}' in feature '{name}'",
                key=str(key),
                suggestion=closest(key, _KEYS),
            )
    agg = decl.get("agg")
    if agg not in AGGS:
        raise FeatureSpecError(
            f"unknown agg '{agg}' in feature '{name}' (one of: {', '.join(AGGS)})",
            key="agg",
            suggestion=closest(agg, AGGS),
        )
    by = decl.get("by")
    if by not in ENTITIES:
        raise FeatureSpecError(
            f"feature '{name}' cannot group by '{by}' (one of: {', '.join(ENTITIES)})",
            key="by",
            suggestion=closest(by, ENTITIES),
        )
    if agg in PREVIOUS and by != "card_id" and agg != "seconds_since_prev":
        raise FeatureSpecError(f"feature '{name}': {agg} is measured by card_id only", key="by")
    of = decl.get("of")
    if agg in NEEDS_OF:
        allowed = DISTINCT_OF if agg in ("distinct", "is_new") else NUMERIC_OF
        if of not in allowed:
            raise FeatureSpecError(
                f"feature '{name}': agg {agg} needs 'of' = one of {', '.join(allowed)}",
                key="of",
                suggestion=closest(of, allowed) if of else None,
            )
    elif of is not None:
        raise FeatureSpecError(f"feature '{name}': agg {agg} takes no 'of'", key="of")
    window_s = 0.0
    if agg in WINDOWED or (agg in SINCE and "window" in decl):
        if "window" not in decl:
            raise FeatureSpecError(
                f"feature '{name}': agg {agg} needs a window such as 10m", key="window"
            )
        window_s = _duration(name, "window", decl["window"])
        if not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S:
            raise FeatureSpecError(
                f"feature '{name}': window must be between 1s and 90d", key="window"
            )
    elif agg in SINCE:
        window_s = DEFAULT_SINCE_WINDOW_S
    elif "window" in decl:
        raise FeatureSpecError(f"feature '{name}': agg {agg} takes no window", key="window")
    ending_s = _ending(name, agg, decl, window_s)
    where = _where(name, agg, decl)
    q = _quantile(name, agg, decl)
    labels = _labels(name, agg, by, decl)
    label_delay_s = 0.0
    if agg in LABEL_AWARE and labels is None:
        label_delay_s = (
            _duration(name, "label_delay", decl["label_delay"])
            if "label_delay" in decl
            else DEFAULT_LABEL_DELAY_S
        )
        if label_delay_s >= window_s + ending_s:
            raise FeatureSpecError(
                f"feature '{name}': label_delay must be shorter than the window"
                + (" plus its ending" if ending_s else ""),
                key="label_delay",
            )
    elif "label_delay" in decl:
        raise FeatureSpecError(
            f"feature '{name}': only fraud_count, fraud_rate and time_since_fraud take a"
            " label_delay" + (" (stored labels carry their own known_at)" if labels else ""),
            key="label_delay",
        )
    return FeatureSpec(
        name=name,
        agg=agg,
        by=by,
        of=of,
        window_s=window_s,
        label_delay_s=label_delay_s,
        labels=labels,
        ending_s=ending_s,
        where=where,
        q=q,
    )


def _ending(name: str, agg: str, decl: dict, window_s: float) -> float:
    """The ``ending:`` lag of a declaration in seconds (0: the window ends at the row)."""
    if "ending" not in decl:
        return 0.0
    if agg not in WINDOWED or agg in NO_ENDING:
        raise FeatureSpecError(
            f"feature '{name}': agg {agg} takes no ending (only windowed aggregates other"
            " than is_new do)",
            key="ending",
        )
    ending_s = _duration(name, "ending", decl["ending"])
    if ending_s <= 0 or window_s + ending_s > MAX_WINDOW_S:
        raise FeatureSpecError(
            f"feature '{name}': ending must be above 0 and the window plus its ending at most 90d",
            key="ending",
        )
    return ending_s


def _where(name: str, agg: str, decl: dict) -> str | None:
    """The ``where:`` condition text of a declaration (checked later, by the rule language)."""
    if "where" not in decl:
        return None
    if agg not in WINDOWED or agg in NO_ENDING:
        raise FeatureSpecError(
            f"feature '{name}': agg {agg} takes no where (only windowed aggregates other than"
            " is_new do)",
            key="where",
        )
    value = decl["where"]
    if not isinstance(value, str) or not value.strip():
        raise FeatureSpecError(
            f"feature '{name}': where must be a condition such as \"amount > 100\"", key="where"
        )
    return value


def _quantile(name: str, agg: str, decl: dict) -> float | None:
    """The quantile of a ``median`` (0.5) or ``percentile`` (its ``q:``, 0..1)."""
    if agg == "median":
        if "q" in decl:
            raise FeatureSpecError(f"feature '{name}': median takes no q (it is q 0.5)", key="q")
        return 0.5
    if agg != "percentile":
        if "q" in decl:
            raise FeatureSpecError(f"feature '{name}': only percentile takes a q", key="q")
        return None
    q = decl.get("q")
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0.0 <= q <= 1.0:
        raise FeatureSpecError(
            f"feature '{name}': percentile needs q, a number from 0 to 1 such as 0.9", key="q"
        )
    return float(q)


def _labels(name: str, agg: str, by: str, decl: dict) -> str | None:
    """The ``labels:`` source of a declaration (None: simulator labels), checked."""
    import re

    if "labels" not in decl:
        return None
    value = decl["labels"]
    if agg not in LABEL_AWARE:
        raise FeatureSpecError(
            f"feature '{name}': only fraud_count, fraud_rate and time_since_fraud take labels",
            key="labels",
        )
    if not isinstance(value, str) or not re.fullmatch(LABEL_SOURCE, value):
        raise FeatureSpecError(
            f"feature '{name}': labels must name a label source such as analyst or chargeback",
            key="labels",
        )
    if by not in LABEL_ENTITIES:
        raise FeatureSpecError(
            f"feature '{name}' with labels cannot group by '{by}'"
            f" (one of: {', '.join(LABEL_ENTITIES)})",
            key="by",
        )
    return value


def _duration(name: str, key: str, value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise FeatureSpecError(f"feature '{name}': {exc}", key=key) from None
