"""Candidate against live: every comparison of a :class:`~workbench.analysis.backtest.Backtest`.

Two ground truths are kept apart and named (:data:`TRUTHS`): the transactions' own
``is_fraud`` (**simulator truth**: the simulator's labels, or a replayed file's) and the
current **analyst labels** (``labels`` of source ``analyst``: dispositions); every table
except ``truths`` and ``analyst_rules`` is measured against simulator truth. ``truths`` gives
precision and recall of each scoring against each, with how many rows each has labelled.

Both scorings are judged with the candidate's alert policy (flagged = band at least
``alert.min_band``; alerts deduplicated per card over ``alert.dedup``), so the figures differ
only by the scores. The candidate's hits are the backtest's evaluation matrix; the live ones
are read back from the stored ``rule_hits`` (:func:`~workbench.scoring.evaluate.stored_hits`).
``text()`` is the CLI's readable report; ``to_dict()`` its ``--json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench import bands
from workbench.analysis import metrics as m
from workbench.scoring.evaluate import stored_hits, stored_rule_ids

if TYPE_CHECKING:  # the backtest imports this module
    from workbench.analysis.backtest import Backtest

SCORINGS = ("live", "candidate")
TRUTHS = {"simulator": "vs simulator truth", "analyst": "vs analyst labels"}
"""Ground truth key -> its name in reports."""


@dataclass
class Comparison:
    """Tables comparing the live (stored) scoring with the candidate's, over the same rows.

    ``summary``: one row per scoring (transactions, band counts, alerts, flagged, precision,
    recall, F1). ``migration``: live band (rows) -> candidate band (columns).
    ``alerts_per_day`` and ``cp_at_k``: one column per scoring, one row per UTC day;
    ``cp_at_k`` by the Card Precision ``protocol`` (a key of
    :data:`~workbench.scoring.metrics.CP_PROTOCOLS`: ``daily`` or ``handbook``).
    ``scenarios`` has the recall at every band (``recall_medium``, ``recall_high``: this
    band or higher) next to the alert decision's ``detected``, ``recall`` and ``precision``.
    ``rules``, ``bands``, ``scenarios``, ``sweep``: a ``scoring`` column says whose figures.
    """

    version: str
    start: pd.Timestamp
    end: pd.Timestamp
    k: int
    summary: pd.DataFrame
    migration: pd.DataFrame
    alerts_per_day: pd.DataFrame
    cp_at_k: pd.DataFrame
    rules: pd.DataFrame
    bands: pd.DataFrame
    scenarios: pd.DataFrame
    sweep: pd.DataFrame
    truths: pd.DataFrame = field(default_factory=pd.DataFrame)
    analyst_rules: pd.DataFrame = field(default_factory=pd.DataFrame)
    protocol: str = "daily"

    @property
    def cp_title(self) -> str:
        """The Card Precision figure named with its protocol, e.g. "Card Precision@100,
        handbook protocol: daily top-100 cards, known-compromised cards excluded, mean over
        7 days"."""
        what = m.CP_PROTOCOLS[self.protocol].format(k=self.k)
        return (
            f"Card Precision@{self.k}, {self.protocol} protocol: {what}, "
            f"mean over {len(self.cp_at_k)} days"
        )

    def cp_mean(self) -> dict[str, float]:
        """Mean CP@k over the days, per scoring (NaN with no day)."""
        return {s: float(self.cp_at_k[s].mean()) if s in self.cp_at_k else math.nan
                for s in SCORINGS}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain numbers and strings, NaN as None, days as ISO dates."""

        def records(frame: pd.DataFrame, index: str | None) -> list[dict[str, Any]]:
            out = frame.reset_index() if index else frame
            if index and index not in out.columns:
                out = out.rename(columns={"index": index})
            return [{k: _plain(v) for k, v in row.items()} for row in out.to_dict("records")]

        return {
            "version": self.version,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "k": self.k,
            "summary": {
                s: {k: _plain(v) for k, v in self.summary.loc[s].items()} for s in SCORINGS
            },
            "migration": {
                str(a): {str(b): int(self.migration.loc[a, b]) for b in self.migration.columns}
                for a in self.migration.index
            },
            "alerts_per_day": records(_dates(self.alerts_per_day), "day"),
            "cp_at_k": records(_dates(self.cp_at_k), "day"),
            "cp_protocol": {
                "name": self.protocol,
                "description": self.cp_title,
                "k": self.k,
                "days": len(self.cp_at_k),
                "mean": {s: _plain(v) for s, v in self.cp_mean().items()},
            },
            "rules": records(self.rules, "rule_id"),
            "bands": records(self.bands, "band"),
            "scenarios": records(self.scenarios, "scenario"),
            "sweep": records(self.sweep, None),
            "truths": records(self.truths, None),
            "analyst_rules": records(self.analyst_rules, "rule_id"),
        }

    def text(self) -> str:
        """A readable report for a terminal."""
        s = self.summary
        lines = [
            f"backtest of rule set {self.version}: {self.start:%Y-%m-%d %H:%M} .. "
            f"{self.end:%Y-%m-%d %H:%M} UTC, {int(s.loc['live', 'transactions']):,} transactions",
            "",
            "precision / recall per ground truth (labelled: rows that truth has a label for)",
            _table(
                self.truths.set_index(["scoring", "truth"])[
                    ["labelled", "flagged", "tp", "fp", "precision", "recall"]
                ]
                if not self.truths.empty
                else self.truths,
                "scoring, truth",
            ),
            "",
            "per rule vs analyst labels (labelled hits, of which fraud)",
            _table(_by_scoring(self.analyst_rules, ["labelled", "precision"]), "rule"),
            "",
            "all figures below: vs simulator truth",
            _table(
                s[["low", "medium", "high", "alerts", "flagged", "precision", "recall", "f1"]],
                "scoring",
            ),
            "",
            "band migration (rows: live, columns: candidate)",
            _table(self.migration, "live \\ cand"),
            "",
            "per rule (each rule alone as a detector)",
            _table(_by_scoring(self.rules, ["hits", "precision", "recall", "f1"]), "rule"),
            "",
            "per fraud scenario: recall at each band (>=medium, >=high: scored in that band or "
            "higher), then at the alert band (alerted, recall, precision)",
            _table(_scenario_table(self.scenarios), "scenario"),
            "",
            f"mean per day: alerts live {self.alerts_per_day['live'].mean():.1f}, candidate "
            f"{self.alerts_per_day['candidate'].mean():.1f}",
            f"{self.cp_title}: live {_fmt(self.cp_mean()['live'])}, candidate "
            f"{_fmt(self.cp_mean()['candidate'])}",
        ]
        return "\n".join(lines)


def compare(
    result: Backtest,
    *,
    k: int = 100,
    thresholds: Sequence[float] | None = None,
    protocol: str = "daily",
) -> Comparison:
    """All comparison tables of a backtest ``result``, with Card Precision@``k`` by
    ``protocol`` (``daily`` or ``handbook``: :data:`~workbench.scoring.metrics.CP_PROTOCOLS`)."""
    if protocol not in m.CP_PROTOCOLS:
        raise ValueError(f"unknown Card Precision protocol {protocol!r}")
    frame = result.frame
    ruleset = result.ruleset
    label = m.labels(frame["is_fraud"])
    analyst = (
        frame["analyst_label"].to_numpy(np.int8)
        if "analyst_label" in frame
        else np.full(len(frame), -1, np.int8)
    )
    alert_rank = bands.alert_rank(ruleset.alert.min_band)
    dedup = ruleset.alert.dedup_s
    days = max((result.end - result.start).total_seconds() / 86_400.0, 1e-9)
    scores = {"live": frame["live_score"].to_numpy(), "candidate": frame["score"].to_numpy()}
    scored = {"live": frame["live_band"], "candidate": frame["band"]}
    hits = {"candidate": result.hits}
    stored = set(stored_rule_ids(frame["rule_hits"]))
    hits["live"] = stored_hits(frame["rule_hits"], sorted(set(result.hits.columns) | stored))

    summary, per_day, cp, rules, band_tables, scen, sweeps = {}, {}, {}, [], [], [], []
    truths, analyst_rules = [], []
    for s in SCORINGS:
        flagged = bands.ranks(scored[s]) >= alert_rank
        for key, truth in (("simulator", label), ("analyst", analyst)):
            labelled = int(np.count_nonzero(truth >= 0))
            truths.append({"scoring": s, "truth": TRUTHS[key], "labelled": labelled,
                           **m.rates(flagged, truth)})  # fmt: skip
        per_rule = m.rule_metrics(hits[s], analyst)
        per_rule["labelled"] = per_rule["tp"] + per_rule["fp"]
        analyst_rules.append(_tag(per_rule, s, "rule_id"))
        per_day[s] = m.alerts_per_day(frame["card_id"], frame["ts"], flagged, dedup)
        summary[s] = m.summary(scored[s], label, flagged, int(per_day[s].sum()))
        cp[s] = m.card_precision(protocol, frame["card_id"], frame["ts"], scores[s], label, k)
        rules.append(_tag(m.rule_metrics(hits[s], label), s, "rule_id"))
        band_tables.append(_tag(m.band_metrics(scored[s], label), s, "band"))
        scen.append(
            _tag(
                m.scenario_metrics(flagged, label, frame["fraud_scenario"], scored[s]),
                s,
                "scenario",
            )
        )
        sweeps.append(m.threshold_sweep(scores[s], label, thresholds, days=days).assign(scoring=s))
    return Comparison(
        version=ruleset.version,
        start=result.start,
        end=result.end,
        k=k,
        summary=pd.DataFrame.from_dict(summary, orient="index").loc[list(SCORINGS)],
        migration=m.band_migration(frame["live_band"], frame["band"]),
        alerts_per_day=pd.DataFrame(per_day).fillna(0).astype("int64"),
        cp_at_k=pd.DataFrame(cp),
        rules=pd.concat(rules) if rules else pd.DataFrame(),
        bands=pd.concat(band_tables),
        scenarios=pd.concat(scen),
        sweep=pd.concat(sweeps, ignore_index=True),
        truths=pd.DataFrame(truths),
        analyst_rules=pd.concat(analyst_rules),
        protocol=protocol,
    )


SCENARIO_COLUMNS = {
    "fraud": "fraud",
    "recall_medium": ">=medium",
    "recall_high": ">=high",
    "detected": "alerted",
    "recall": "recall",
    "precision": "precision",
}


def _scenario_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and scoring: the recall at each band, then the alert decision's figures."""
    if frame.empty:
        return frame
    columns = [c for c in SCENARIO_COLUMNS if c in frame.columns]
    return _by_scoring(frame, columns).rename(columns=SCENARIO_COLUMNS, level=1)


def _tag(frame: pd.DataFrame, scoring: str, index: str) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame({"scoring": pd.Series([], dtype="str")}, index=pd.Index([], name=index))
    return frame.assign(scoring=scoring)


def _by_scoring(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    wide = frame.set_index("scoring", append=True)[columns].unstack("scoring")
    order = pd.MultiIndex.from_product([list(SCORINGS), columns])
    return wide.swaplevel(axis=1).reindex(columns=order)


def _dates(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.index = [d.strftime("%Y-%m-%d") for d in pd.DatetimeIndex(out.index)]
    out.index.name = "day"
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "—"
        return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.3f}"
    return str(value)


def _table(frame: pd.DataFrame, corner: str) -> str:
    """Fixed-width text table (pandas' to_string with our number format)."""
    if frame.empty:
        return "  (none)"
    cols = [" ".join(str(p) for p in c) if isinstance(c, tuple) else str(c) for c in frame.columns]
    body = [[str(i) for i in frame.index]] + [
        [_fmt(v) for v in frame.iloc[:, j]] for j in range(frame.shape[1])
    ]
    heads = [corner, *cols]
    widths = [max(len(h), *(len(v) for v in col)) for h, col in zip(heads, body, strict=True)]
    out = [
        "  "
        + "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(heads, widths, strict=True))
        )
    ]
    for r in range(frame.shape[0]):
        cells = [col[r] for col in body]
        out.append(
            "  "
            + "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    return "\n".join(out)
