"""Rule health arithmetic: fire rates, drift alarms, silent and constant rules, overlaps, and
the score threshold that fits an alert budget — plain functions over frames.

Pure numpy/pandas in the scoring layer (as :mod:`workbench.scoring.metrics`), so that the
dashboard's Rules page and the analysis API (:mod:`workbench.analysis.rule_health`, which
reads the inputs from stored history) share one implementation. Inputs are the long frames
of :mod:`workbench.storage.rule_fires` or the same built from a hit matrix
(:func:`counts_from_hits`, :func:`card_days_of`).

Decisions, in one place:

- **Fire rate** of a rule in a bucket = transactions it hit / transactions in the bucket.
- **Drift** (:func:`drift`): a bucket's rate against the ``window`` buckets before it (mean,
  sample std), once at least ``min_history`` of them exist. Alarm when ``|z| > z_max``
  (default 3) and the rate moved by more than ``min_change`` (default 25 %) of the mean: a
  near-constant baseline has a tiny std that makes any wobble a large z. A flat baseline
  (std 0) has no z: alarm when the rate leaves it by more than a factor ``ratio_max``
  (default 3) either way, or when a rule that never fired starts to.
- **Never fires / always fires** (:func:`fire_status`) over the last ``days`` buckets: no hit
  at all, or a rate of at least ``always_rate`` (default 0.99: a rule on 99 % of traffic
  tells nothing apart).
- **Overlap** (:func:`overlap`): ``overlap.loc[a, b]`` = share of a's hits where b also hits
  (rows: a; the diagonal is 1; a row of a rule without hits is NaN).
- **Capacity** (:func:`tradeoff`, :func:`recommend`): the unit is a card-day (a card's
  highest score of a UTC day; fraud when any of its transactions that day is fraud, per
  truth). A threshold ``t`` alerts the card-days scoring ``>= t``; analysts review at most
  ``budget`` cards a day, the highest scores first. Card Precision@k (k = budget) = fraud
  cards among those reviewed / k, averaged over the days. The recommended threshold has mean
  alerts per day within the budget and the highest CP@k; among equal CP@k the highest
  threshold (fewest alerts). Simulator truth (``is_fraud``) and analyst labels are two named
  truths, never mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "GRID",
    "TRUTHS",
    "Health",
    "Recommendation",
    "assess",
    "card_days_of",
    "counts_from_hits",
    "drift",
    "fire_rates",
    "fire_status",
    "overlap",
    "overlap_from_pairs",
    "recommend",
    "tradeoff",
]

TRUTHS = {"simulator": "simulator_fraud", "analyst": "analyst_fraud"}
"""Truth name -> its card-day column."""
GRID = np.arange(0.0, 100.5, 1.0)
"""Default thresholds: every integer score."""


# -- fire rates ----------------------------------------------------------------------------


def counts_from_hits(hits: pd.DataFrame, ts: pd.Series, freq: str = "1D") -> pd.DataFrame:
    """The long frame of :func:`~workbench.storage.rule_fires.fire_counts` from a boolean hit
    matrix (one column per rule) and the rows' timestamps."""
    bucket = pd.Series(pd.DatetimeIndex(ts).floor(freq), index=hits.index, name="bucket")
    totals = bucket.value_counts().sort_index().rename("transactions")
    per = hits.astype("int64").groupby(bucket.to_numpy()).sum()
    per.index.name = "bucket"
    long = per.stack().rename("hits").reset_index().rename(columns={"level_1": "rule_id"})
    long.columns = ["bucket", "rule_id", "hits"]
    long = long[long["hits"] > 0]
    out = totals.rename_axis("bucket").reset_index().merge(long, on="bucket", how="left")
    out["hits"] = out["hits"].fillna(0).astype("int64")
    return out[["bucket", "transactions", "rule_id", "hits"]]


def fire_rates(counts: pd.DataFrame, rule_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Wide frame: one row per bucket, one column per rule (``rule_ids`` added as zero
    columns when they never hit), the fire rate; a ``transactions`` attribute per bucket."""
    totals = counts.groupby("bucket")["transactions"].first().sort_index()
    hit = counts.dropna(subset=["rule_id"])
    wide = hit.pivot_table(index="bucket", columns="rule_id", values="hits", aggfunc="sum")
    columns = sorted(set(wide.columns) | set(rule_ids or ()))
    wide = wide.reindex(index=totals.index, columns=columns).fillna(0)
    rates = wide.div(totals.to_numpy(np.float64), axis=0)
    rates.columns.name = "rule_id"
    rates.attrs["transactions"] = totals
    return rates


def drift(
    rates: pd.DataFrame,
    *,
    window: int = 7,
    min_history: int = 3,
    z_max: float = 3.0,
    ratio_max: float = 3.0,
    min_change: float = 0.25,
) -> pd.DataFrame:
    """Per (bucket, rule): rate, baseline ``mean``/``std`` of the ``window`` buckets before,
    ``z``, ``alarm`` and its ``reason`` (module docstring)."""
    past = rates.shift(1).rolling(window, min_periods=min_history)
    mean, std = past.mean(), past.std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (rates - mean) / std.where(std > 0)
    flat = std.eq(0) & mean.notna()
    high = z.abs().gt(z_max) & (rates - mean).abs().gt(min_change * mean)
    jump = flat & ((rates > mean * ratio_max) | (rates < mean / ratio_max)) & mean.gt(0)
    started = flat & mean.eq(0) & rates.gt(0)
    reason = pd.DataFrame("", index=rates.index, columns=rates.columns)
    reason = reason.mask(high, "|z| > " + f"{z_max:g}")
    reason = reason.mask(jump, f"rate left a flat baseline by more than x{ratio_max:g}")
    reason = reason.mask(started, "started firing after a silent baseline")
    parts = {"rate": rates, "mean": mean, "std": std, "z": z, "reason": reason}
    out = pd.concat({k: v.stack(future_stack=True) for k, v in parts.items()}, axis=1)
    out["alarm"] = out["reason"] != ""
    return out.rename_axis(["bucket", "rule_id"]).reset_index()


def fire_status(
    counts: pd.DataFrame,
    rule_ids: Sequence[str] | None = None,
    *,
    days: int = 7,
    always_rate: float = 0.99,
) -> pd.DataFrame:
    """Per rule over the last ``days`` buckets: hits, transactions, rate and ``status``
    (``never fires``, ``always fires`` or ``ok``)."""
    rates = fire_rates(counts, rule_ids)
    totals = rates.attrs["transactions"].iloc[-days:] if days else rates.attrs["transactions"]
    recent = rates.loc[totals.index]
    hits = recent.mul(totals.to_numpy(np.float64), axis=0).round().sum().astype("int64")
    n = int(totals.sum())
    out = pd.DataFrame({"hits": hits, "transactions": n})
    out["rate"] = out["hits"] / n if n else np.nan
    out["status"] = np.select(
        [out["hits"].eq(0), out["rate"].ge(always_rate)], ["never fires", "always fires"], "ok"
    )
    return out.rename_axis("rule_id")


# -- overlap -------------------------------------------------------------------------------


def overlap(hits: pd.DataFrame) -> pd.DataFrame:
    """``out.loc[a, b]``: share of rule a's hits where b also hits, from a boolean matrix."""
    h = hits.to_numpy(np.int64)
    both = pd.DataFrame(h.T @ h, index=hits.columns, columns=hits.columns)
    return _share(both)


def overlap_from_pairs(pairs: pd.DataFrame, rule_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The overlap matrix from :func:`~workbench.storage.rule_fires.co_hits`."""
    ids = sorted(set(pairs["rule_a"]) | set(rule_ids or ()))
    both = pairs.pivot_table(index="rule_a", columns="rule_b", values="both_hit", aggfunc="sum")
    return _share(both.reindex(index=ids, columns=ids).fillna(0))


def _share(both: pd.DataFrame) -> pd.DataFrame:
    own = np.diag(both.to_numpy(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = both.div(np.where(own > 0, own, np.nan), axis=0)
    out.index.name, out.columns.name = "rule", "also_hit"
    return out


# -- capacity ------------------------------------------------------------------------------


def card_days_of(
    card: pd.Series, ts: pd.Series, score: np.ndarray, fraud: np.ndarray, truth: str = "simulator"
) -> pd.DataFrame:
    """Card-days (``day, card_id, score`` and the truth's column) from per-transaction
    arrays; ``fraud``: int8 1 fraud, 0 genuine, -1 unknown (as a backtest frame has them)."""
    frame = pd.DataFrame(
        {
            "day": pd.DatetimeIndex(ts).tz_convert("UTC").floor("1D"),
            "card_id": pd.Series(card, dtype="str").to_numpy(object),
            "score": np.asarray(score, np.float64),
            "fraud": np.where(np.asarray(fraud) >= 0, np.asarray(fraud) == 1, np.nan),
        }
    )
    out = frame.groupby(["day", "card_id"], sort=True).agg(
        score=("score", "max"), fraud=("fraud", "max")
    )
    out[TRUTHS[truth]] = out.pop("fraud").map({1.0: True, 0.0: False}).astype("boolean")
    return out.reset_index()


def tradeoff(
    card_days: pd.DataFrame,
    budget: int,
    *,
    truth: str = "simulator",
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Per threshold: alerts_per_day, precision, recall, cp_at_k (k = ``budget``) and
    ``within_budget``, on card-days (module docstring)."""
    if budget < 1:
        raise ValueError(f"the alert budget must be at least 1 card a day, got {budget}")
    grid = GRID if thresholds is None else np.asarray(thresholds, np.float64)
    cd = card_days.sort_values(["day", "score", "card_id"], ascending=[True, False, True])
    days = max(cd["day"].nunique(), 1)
    fraud = cd[TRUTHS[truth]].astype("boolean")
    is_fraud = fraud.fillna(False).to_numpy(bool)
    genuine = fraud.eq(False).fillna(False).to_numpy(bool)
    reviewed = cd.groupby("day", sort=False).cumcount().to_numpy() < budget
    score = cd["score"].to_numpy(np.float64)

    def at_least(mask: np.ndarray) -> np.ndarray:
        s = np.sort(score[mask])
        return len(s) - np.searchsorted(s, grid, side="left")

    alerted, tp, fp = at_least(np.ones(len(cd), bool)), at_least(is_fraud), at_least(genuine)
    caught = at_least(is_fraud & reviewed)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame(
            {
                "threshold": grid,
                "alerts_per_day": alerted / days,
                "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
                "recall": tp / is_fraud.sum() if is_fraud.any() else np.nan,
                "cp_at_k": caught / (budget * days),
            }
        )
    out["within_budget"] = out["alerts_per_day"] <= budget
    return out


@dataclass
class Recommendation:
    """The threshold for an alert budget, with the trade-off curve it was chosen on."""

    budget: int
    truth: str
    threshold: float
    alerts_per_day: float
    cp_at_k: float
    precision: float
    recall: float
    within_budget: bool
    curve: pd.DataFrame

    def text(self, min_band: str = "high") -> str:
        """One line: what to set, and what it gives."""
        fit = "within" if self.within_budget else "OVER (no threshold fits)"
        band = min_band.lower()
        return (
            f"alert budget {self.budget} cards/day ({self.truth} truth): set bands.{band}"
            f" to {self.threshold:g} -> {self.alerts_per_day:.1f} alerts/day ({fit} budget),"
            f" CP@{self.budget} {self.cp_at_k:.3f}, precision {self.precision:.3f},"
            f" recall {self.recall:.3f}"
        )


def recommend(
    card_days: pd.DataFrame,
    budget: int,
    *,
    truth: str = "simulator",
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> Recommendation:
    """The threshold with mean alerts per day within ``budget`` and the highest CP@k (ties:
    the highest threshold); when no threshold fits, the highest one, flagged over budget."""
    curve = tradeoff(card_days, budget, truth=truth, thresholds=thresholds)
    fits = curve[curve["within_budget"]]
    if len(fits):
        best = fits["cp_at_k"].fillna(-1.0)
        row = fits.loc[best[best == best.max()].index.max()]
    else:
        row = curve.loc[curve["threshold"].idxmax()]
    return Recommendation(
        budget=int(budget),
        truth=truth,
        threshold=float(row["threshold"]),
        alerts_per_day=float(row["alerts_per_day"]),
        cp_at_k=float(row["cp_at_k"]),
        precision=float(row["precision"]),
        recall=float(row["recall"]),
        within_budget=bool(row["within_budget"]),
        curve=curve,
    )


@dataclass
class Health:
    """Rule health over ``[start, end)``: counts, rates, drift, status, overlap."""

    start: pd.Timestamp
    end: pd.Timestamp
    counts: pd.DataFrame
    rates: pd.DataFrame
    drift: pd.DataFrame
    status: pd.DataFrame
    overlap: pd.DataFrame

    @property
    def alarms(self) -> pd.DataFrame:
        """Drift alarms of the newest bucket."""
        d = self.drift
        return d[d["alarm"] & (d["bucket"] == d["bucket"].max())].reset_index(drop=True)


def assess(
    counts: pd.DataFrame,
    pairs: pd.DataFrame,
    rule_ids: Sequence[str] | None = None,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    status_days: int = 7,
    **drift_options,
) -> Health:
    """:class:`Health` from fire counts and co-hit pairs (``rule_ids``: the active rules, so
    that one that never hit is listed)."""
    rates = fire_rates(counts, rule_ids)
    return Health(
        start=start,
        end=end,
        counts=counts,
        rates=rates,
        drift=drift(rates, **drift_options),
        status=fire_status(counts, rule_ids, days=status_days),
        overlap=overlap_from_pairs(pairs, rule_ids),
    )
