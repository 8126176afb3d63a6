"""Detection metrics over scored transactions: plain vectorized functions of arrays and frames.

They live in the scoring layer (pure numpy/pandas, no database) so that both the analysis
layer (backtests, notebooks) and the dashboard's rule editor (what-if) can use them;
:mod:`workbench.analysis.metrics` re-exports them.

Labels are the schema's nullable ``is_fraud``: a transaction with a missing label counts in
volumes (alerts, band mix) but neither as fraud nor as genuine in precision and recall. A
transaction is *flagged* when its band reaches the alert band (``High`` by default).

Definitions (``tp``: flagged fraud, ``fp``: flagged genuine, ``fn``: fraud not flagged):
precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = their harmonic mean; NaN when a
denominator is zero.

>>> import numpy as np
>>> rates(np.array([True, True, False, False]), np.array([1, 0, 1, 0], dtype=np.int8))
{'flagged': 2, 'tp': 1, 'fp': 1, 'fn': 1, 'precision': 0.5, 'recall': 0.5, 'f1': 0.5}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from workbench import bands

_NS_DAY = 86_400 * 1_000_000_000


def labels(is_fraud: pd.Series | np.ndarray) -> np.ndarray:
    """int8 labels: 1 fraud, 0 genuine, -1 unknown."""
    series = pd.Series(is_fraud).astype("boolean")
    known = series.notna().to_numpy()
    return np.where(known, series.fillna(False).to_numpy(dtype=bool), -1).astype(np.int8)


def rates(flagged: np.ndarray, label: np.ndarray) -> dict[str, float | int]:
    """Flagged count, tp, fp, fn, precision, recall and F1 of one boolean decision."""
    flagged = np.asarray(flagged, dtype=bool)
    fraud, genuine = label == 1, label == 0
    tp = int(np.count_nonzero(flagged & fraud))
    fp = int(np.count_nonzero(flagged & genuine))
    fn = int(np.count_nonzero(~flagged & fraud))
    precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
    f1 = _div(2 * precision * recall, precision + recall) if tp else (0.0 if tp + fn else np.nan)
    return {
        "flagged": int(np.count_nonzero(flagged)),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def rule_metrics(hits: pd.DataFrame, label: np.ndarray) -> pd.DataFrame:
    """Per rule (a column of the boolean ``hits`` frame): hits, tp, fp, fn, precision,
    recall, F1 — the rule alone as a detector."""
    rows = [{"rule_id": rule, **rates(hits[rule].to_numpy(bool), label)} for rule in hits.columns]
    return _frame(rows, "rule_id").rename(columns={"flagged": "hits"})


def band_metrics(band: pd.Series | np.ndarray, label: np.ndarray) -> pd.DataFrame:
    """Per band: transactions, fraud, genuine, precision (share of labelled rows of the band
    that are fraud), and — treating "this band or higher" as flagged — recall and F1."""
    rank = bands.ranks(band)
    rows = []
    for r, name in enumerate(bands.LABELS, start=1):
        inside = rank == r
        at_least = rates(rank >= r, label)
        fraud = int(np.count_nonzero(inside & (label == 1)))
        genuine = int(np.count_nonzero(inside & (label == 0)))
        rows.append(
            {
                "band": name,
                "transactions": int(np.count_nonzero(inside)),
                "fraud": fraud,
                "genuine": genuine,
                "precision": _div(fraud, fraud + genuine),
                "recall_at_least": at_least["recall"],
                "f1_at_least": at_least["f1"],
            }
        )
    return _frame(rows, "band")


def scenario_metrics(
    flagged: np.ndarray,
    label: np.ndarray,
    scenario: pd.Series | np.ndarray,
    band: pd.Series | np.ndarray | None = None,
) -> pd.DataFrame:
    """Per fraud scenario, one scenario against genuine traffic: fraud (rows of the
    scenario), detected, recall = detected / fraud, precision = detected / (detected +
    flagged genuine rows) and F1 — ``flagged`` being the alert decision. Labelled fraud
    without a scenario is ``(unnamed)``.

    With ``band`` (each row's band), also the recall at every band: ``recall_medium`` and
    ``recall_high``, the share of the scenario's rows scored in that band or higher (so a
    scenario scored Medium but never High shows where it stops).

    >>> out = scenario_metrics(np.array([True, False, False]), np.array([1, 1, 0], np.int8),
    ...                        np.array(["a", "a", ""]), np.array(["High", "Medium", "Low"]))
    >>> out[["fraud", "recall_medium", "recall_high", "recall"]].loc["a"].tolist()
    [2.0, 1.0, 0.5, 0.5]
    """
    flagged = np.asarray(flagged, dtype=bool)
    name = pd.Series(scenario, dtype="str").fillna("").to_numpy(dtype=object)
    fraud = label == 1
    fp = int(np.count_nonzero(flagged & (label == 0)))
    rank = bands.ranks(band) if band is not None else None
    names = pd.unique(name[fraud])
    rows = []
    for s in sorted(names, key=str):
        mine = fraud & (name == s)
        n = int(np.count_nonzero(mine))
        tp = int(np.count_nonzero(mine & flagged))
        precision, recall = _div(tp, tp + fp), _div(tp, n)
        f1 = _div(2 * precision * recall, precision + recall) if tp else 0.0
        row: dict[str, object] = {"scenario": s or "(unnamed)", "fraud": n}
        if rank is not None:
            for r, label_name in enumerate(bands.LABELS[1:], start=2):
                at_least = int(np.count_nonzero(mine & (rank >= r)))
                row[f"recall_{label_name.lower()}"] = _div(at_least, n)
        row.update({"detected": tp, "precision": precision, "recall": recall, "f1": f1})
        rows.append(row)
    return _frame(rows, "scenario")


def band_migration(before: pd.Series | np.ndarray, after: pd.Series | np.ndarray) -> pd.DataFrame:
    """Counts of transactions from each band (rows, ``before``) to each band (columns,
    ``after``), every band present in both, in Low/Medium/High order."""
    a, b = bands.ranks(before), bands.ranks(after)
    ok = (a > 0) & (b > 0)
    k = len(bands.LABELS)
    counts = np.bincount((a[ok] - 1) * k + (b[ok] - 1), minlength=k * k).reshape(k, k)
    out = pd.DataFrame(counts, index=list(bands.LABELS), columns=list(bands.LABELS))
    out.index.name, out.columns.name = "from", "to"
    return out


def day_of(ts: pd.Series) -> np.ndarray:
    """UTC day (datetime64[D]) of each timestamp."""
    ns = pd.Series(ts).dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    return ns.astype("datetime64[D]")


def alert_sessions(
    card: pd.Series | np.ndarray, ts: pd.Series, flagged: np.ndarray, dedup_s: float
) -> np.ndarray:
    """Positions of the flagged rows that would open an alert: per card, a flagged row more
    than ``dedup_s`` after the card's previous flagged row (the writer's dedup, without
    analysts closing alerts in between)."""
    flagged = np.asarray(flagged, dtype=bool)
    pos = np.flatnonzero(flagged)
    if not len(pos):
        return pos
    cards = pd.Series(card).to_numpy(dtype=object)[pos]
    t = pd.Series(ts).dt.tz_convert("UTC").array.asi8[pos]
    order = np.lexsort((t, pd.factorize(cards)[0]))
    c, tt = pd.factorize(cards)[0][order], t[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (c[1:] != c[:-1]) | (tt[1:] - tt[:-1] > dedup_s * 1e9)
    return np.sort(pos[order[starts]])


def alerts_per_day(
    card: pd.Series | np.ndarray, ts: pd.Series, flagged: np.ndarray, dedup_s: float
) -> pd.Series:
    """Alerts opened per UTC day (every day between the first and last row present)."""
    days = day_of(ts)
    if not len(days):
        return pd.Series([], dtype="int64", name="alerts")
    opened = alert_sessions(card, ts, flagged, dedup_s)
    index = pd.date_range(days.min(), days.max(), freq="D")
    counts = pd.Series(days[opened]).value_counts()
    return counts.reindex(index, fill_value=0).astype("int64").rename("alerts")


def card_precision_at_k(
    card: pd.Series | np.ndarray,
    ts: pd.Series,
    score: np.ndarray,
    label: np.ndarray,
    k: int = 100,
) -> pd.Series:
    """Card Precision@k per UTC day: the share of fraud cards among the ``k`` cards with the
    highest score that day (a card's score of the day is the maximum over its transactions;
    a card is a fraud card of the day when any of its transactions that day is labelled
    fraud). Ties are broken by card id so the answer is deterministic. Always divided by
    ``k``, as in the usual definition, even on a day with fewer cards."""
    per_card = _card_days(card, ts, score, label, k)
    if per_card is None:
        return pd.Series([], dtype="float64", name=f"cp@{k}")
    top = per_card.groupby("day", sort=True).head(k)
    out = top.groupby("day", sort=True)["fraud"].sum() / float(k)
    out.index = pd.DatetimeIndex(out.index)
    return out.rename(f"cp@{k}")


CP_PROTOCOLS = {
    "daily": "daily top-{k} cards, every card a candidate every day",
    "handbook": "daily top-{k} cards, known-compromised cards excluded",
}
"""Card Precision@k protocols (``workbench backtest --protocol``) and how reports name them."""


def card_precision_handbook(
    card: pd.Series | np.ndarray,
    ts: pd.Series,
    score: np.ndarray,
    label: np.ndarray,
    k: int = 100,
) -> pd.DataFrame:
    """Card Precision@k per UTC day with the Fraud Detection Handbook's protocol (chapter 4,
    "Precision top-k metrics", ``card_precision_top_k``): the days are taken in order, and
    "cards known to be compromised are removed from the list of daily candidates" — a card
    found fraudulent among an earlier day's top ``k`` is no candidate on the later days. Each
    remaining card's score of the day is the maximum over its transactions, it is a fraud card
    of the day when any of them is labelled fraud; CP@k of the day = fraud cards among the
    top ``k`` / ``k``. Ties are broken by card id.

    One row per day with transactions: ``cp``, ``cards`` (candidates), ``fraud_cards``
    (compromised candidates: the most the top ``k`` can find), ``detected`` (fraud cards in
    the top ``k``, known from then on) and ``excluded`` (cards of the day already known).
    The loop is over days; each day is vectorized.
    """
    per_card = _card_days(card, ts, score, label, k)
    if per_card is None:
        return pd.DataFrame(
            {c: pd.Series([], dtype="float64") for c in _HANDBOOK_COLUMNS},
            index=pd.DatetimeIndex([], name="day"),
        )
    known = np.zeros(0, dtype=object)
    days, rows = [], []
    for day, cards in per_card.groupby("day", sort=True):
        seen = np.isin(cards["card"].to_numpy(), known)
        candidates = cards[~seen]
        top = candidates.head(k)
        found = top["card"].to_numpy()[top["fraud"].to_numpy()]
        known = np.concatenate([known, found])
        days.append(day)
        rows.append(
            {
                "cp": len(found) / float(k),
                "cards": len(candidates),
                "fraud_cards": int(candidates["fraud"].sum()),
                "detected": len(found),
                "excluded": int(seen.sum()),
            }
        )
    return pd.DataFrame(rows, index=pd.DatetimeIndex(days, name="day"))


_HANDBOOK_COLUMNS = ("cp", "cards", "fraud_cards", "detected", "excluded")


def card_precision(
    protocol: str,
    card: pd.Series | np.ndarray,
    ts: pd.Series,
    score: np.ndarray,
    label: np.ndarray,
    k: int = 100,
) -> pd.Series:
    """CP@k per UTC day by ``protocol`` (a key of :data:`CP_PROTOCOLS`)."""
    if protocol == "daily":
        return card_precision_at_k(card, ts, score, label, k)
    if protocol == "handbook":
        return card_precision_handbook(card, ts, score, label, k)["cp"].rename(f"cp@{k}")
    raise ValueError(f"unknown Card Precision protocol {protocol!r}: use {', '.join(CP_PROTOCOLS)}")


def _card_days(card, ts, score, label, k: int) -> pd.DataFrame | None:
    """Per (day, card): max score and any fraud, sorted by day, score descending, card id."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    frame = pd.DataFrame(
        {
            "day": day_of(ts),
            "card": pd.Series(card, dtype="str").to_numpy(dtype=object),
            "score": np.asarray(score, dtype=np.float64),
            "fraud": np.asarray(label) == 1,
        }
    )
    if frame.empty:
        return None
    per_card = frame.groupby(["day", "card"], sort=False).agg(
        score=("score", "max"), fraud=("fraud", "any")
    )
    return per_card.reset_index().sort_values(
        ["day", "score", "card"], ascending=[True, False, True], kind="stable"
    )


def threshold_sweep(
    score: np.ndarray,
    label: np.ndarray,
    thresholds: Sequence[float] | np.ndarray | None = None,
    *,
    days: float | None = None,
) -> pd.DataFrame:
    """Flag ``score >= threshold`` for each threshold (default 0..100 by 5): flagged,
    precision, recall, F1, and ``flagged_per_day`` when ``days`` is given."""
    grid = np.arange(0.0, 100.1, 5.0) if thresholds is None else np.asarray(thresholds, float)
    score = np.asarray(score, dtype=np.float64)

    # Counts of score >= t by binary search in sorted scores: one sort, no loop over rows.
    def at_least(values: np.ndarray) -> np.ndarray:
        s = np.sort(values)
        return len(s) - np.searchsorted(s, grid, side="left")

    flagged = at_least(score)
    tp = at_least(score[label == 1])
    fp = at_least(score[label == 0])
    fraud = int(np.count_nonzero(label == 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(fraud > 0, tp / max(fraud, 1), np.nan)
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    out = pd.DataFrame(
        {
            "threshold": grid,
            "flagged": flagged.astype(np.int64),
            "tp": tp.astype(np.int64),
            "fp": fp.astype(np.int64),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    )
    if days:
        out["flagged_per_day"] = out["flagged"] / days
    return out


def summary(
    band: pd.Series | np.ndarray, label: np.ndarray, flagged: np.ndarray, alerts: int
) -> dict[str, float | int]:
    """Headline figures of one scoring: transactions, per-band counts, alerts, and the
    flagged decision's precision, recall and F1."""
    rank = bands.ranks(band)
    out: dict[str, float | int] = {"transactions": len(rank)}
    for r, name in enumerate(bands.LABELS, start=1):
        out[name.lower()] = int(np.count_nonzero(rank == r))
    out["alerts"] = int(alerts)
    r = rates(flagged, label)
    out.update({key: r[key] for key in ("flagged", "precision", "recall", "f1")})
    return out


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def _frame(rows: list[Mapping[str, object]], index: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.set_index(index) if len(frame) else frame
