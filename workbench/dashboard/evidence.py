"""Why an alert fired, with numbers: the evidence panel of the alert detail.

For the selected alert, :class:`EvidenceView` shows

- **the rules that fired**: rule, points, description, each name the rule read with the
  value it saw when the transaction was scored (``amount = 2,500.00; cust_avg_30d = 61.20``)
  and the condition — from ``alert_evidence``, stored at scoring time
  (:mod:`workbench.scoring.evidence`), so it is what the rule saw, not a recomputation;
- **the card's timeline anchored at the alert**: the card's transactions before and after
  the alert's event time on one time axis (amount, coloured by band), the alert marked by a
  vertical line, and the same rows in a table;
- **a link into the History drill-down** for the card and that moment: a button calling the
  session's ``on_history(card, at)``, and :func:`history_query` / :func:`parse_history_query`
  for the URL form ``?card=<id>&at=<ISO event time>``.

Every value is text in a read-only table or escaped by :mod:`~workbench.dashboard.safe`:
nothing from a transaction or a rule file is rendered as HTML here. Reads run in worker
threads (:func:`load_evidence`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import holoviews as hv
import holoviews.plotting.bokeh  # the Bokeh backend: the options below need it
import pandas as pd
import panel as pn

from workbench.dashboard import clock, safe
from workbench.dashboard.parts import read_only_table
from workbench.dashboard.theme import BAND_COLORS
from workbench.errors import WorkbenchError
from workbench.storage import shared_store

__all__ = [
    "EvidenceView",
    "evidence_rows",
    "history_query",
    "load_evidence",
    "parse_history_query",
    "timeline_rows",
]

BEFORE, AFTER = 50, 20  # transactions of the card shown before / after the alert
RULE_COLUMNS = ["rule", "points", "evidence", "when", "description"]
TIMELINE_COLUMNS = ["time", "side", "tx_id", "amount", "currency", "band", "risk_score", "rules"]


def history_query(card_id: str, at: datetime | pd.Timestamp) -> str:
    """The History page's URL query for a card at a moment: ``?card=...&at=...``."""
    moment = pd.Timestamp(at).tz_convert("UTC") if pd.Timestamp(at).tzinfo else pd.Timestamp(at)
    return "?" + urlencode({"card": str(card_id), "at": moment.isoformat()})


def parse_history_query(query: str | Mapping[str, Any]) -> tuple[str, pd.Timestamp] | None:
    """``(card, at)`` from a History URL query (text or Panel's ``query_params`` /
    ``session_args`` mapping); None when absent or malformed."""
    args = parse_qs(query.lstrip("?")) if isinstance(query, str) else dict(query)

    def first(key: str) -> str | None:
        value = args.get(key)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return None if value is None else str(value)

    card, at = first("card"), first("at")
    if not card or not at or len(card) > 128:
        return None
    try:
        moment = pd.Timestamp(at)
    except (ValueError, TypeError):
        return None
    return card, moment.tz_localize("UTC") if moment.tzinfo is None else moment


def _shown(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "missing" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def evidence_rows(long: pd.DataFrame, rules: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (transaction, fired rule): points, description, ``name = value; ...``
    and the condition, heaviest rule first. ``rules``: rule id -> Rule (or anything with
    ``description`` and ``when``)."""
    if long.empty:
        return pd.DataFrame(columns=RULE_COLUMNS)
    pairs = long["name"].astype(str) + " = " + long["value"].map(_shown)
    grouped = (
        long.assign(pair=pairs)
        .groupby(["ts", "tx_id", "rule_id"], sort=False)
        .agg(points=("points", "first"), evidence=("pair", "; ".join))
        .reset_index()
        .sort_values(["ts", "points"], ascending=[True, False], kind="stable")
    )
    return pd.DataFrame(
        {
            "rule": grouped["rule_id"].to_numpy(),
            "points": grouped["points"].to_numpy(),
            "evidence": grouped["evidence"].to_numpy(),
            "when": [getattr(rules.get(r), "when", "") for r in grouped["rule_id"]],
            "description": [getattr(rules.get(r), "description", "") for r in grouped["rule_id"]],
        }
    ).reset_index(drop=True)


def timeline_rows(frame: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """The card's transactions as the timeline table shows them (``time``: event time in the
    display zone, titled so by the table)."""
    if frame.empty:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    ts = pd.to_datetime(frame["ts"], utc=True)
    return pd.DataFrame(
        {
            "time": clock.stamp(ts).to_numpy(),
            "side": ["alert" if t == at else ("before" if t < at else "after") for t in ts],
            "tx_id": frame["tx_id"].astype(str).to_numpy(),
            "amount": frame["amount"].astype(float).to_numpy(),
            "currency": frame["currency"].astype(str).to_numpy(),
            "band": frame["band"].astype(str).to_numpy(),
            "risk_score": frame["risk_score"].astype(float).to_numpy(),
            "rules": [", ".join(sorted(h or {})) for h in frame["rule_hits"]],
        }
    )


def load_evidence(dsn: str, alert: Mapping[str, Any], rules: Mapping[str, Any]) -> dict:
    """Everything the panel shows for ``alert`` (a row of ``alerts``: id, card_id, ts),
    read in the calling (worker) thread."""
    store = shared_store(dsn)
    at = pd.Timestamp(alert["ts"])
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    long = store.evidence.of_alert(int(alert["id"]))
    card = store.evidence.timeline(str(alert["card_id"]), at.to_pydatetime(), BEFORE, AFTER)
    return {
        "rules": evidence_rows(long, rules),
        "timeline": card,
        "at": at,
        "card": str(alert["card_id"]),
        "stored": not long.empty,
    }


def timeline_plot(frame: pd.DataFrame, at: pd.Timestamp, card: str) -> hv.Overlay:
    """Amount over event time, one colour per band, the alert marked by a vertical line."""
    data = pd.DataFrame(
        {
            "time": clock.naive(pd.to_datetime(frame["ts"], utc=True)),
            "amount": frame["amount"].astype(float),
            "band": frame["band"].astype(str),
            "tx_id": frame["tx_id"].astype(str),
        }
    )
    points = [
        hv.Scatter(part, "time", ["amount", "tx_id"], label=band).opts(
            color=BAND_COLORS.get(band, "#888888"), size=7, tools=["hover"]
        )
        for band, part in data.groupby("band", sort=True)
    ]
    alert = hv.VLine(clock.naive(at)).opts(color="#222222", line_dash="dashed")
    return hv.Overlay([*points, alert]).opts(
        title=f"Card {card}: amount by {clock.label()}; dashed line = the alert",
        xlabel=clock.label(),
        ylabel="amount",
        responsive=True,
        height=260,
        legend_position="top_left",
    )


class EvidenceView(pn.viewable.Viewer):
    """The alert detail's "why, with numbers" panel. ``await view.show(alert, rules)``."""

    def __init__(
        self, dsn: str, on_history: Callable[[str, pd.Timestamp], None] | None = None, **params
    ):
        super().__init__(**params)
        self.dsn = dsn
        self.on_history = on_history
        self.target: tuple[str, pd.Timestamp] | None = None
        self.message = safe.pane(safe.text("Select an alert."), css_classes=["evidence-message"])
        self.rules = read_only_table(pd.DataFrame(columns=RULE_COLUMNS), "alert-evidence", 220)
        self.plot = pn.Column(sizing_mode="stretch_width", css_classes=["alert-timeline-plot"])
        self.timeline = read_only_table(
            pd.DataFrame(columns=TIMELINE_COLUMNS), "alert-timeline", 240
        )
        self.history_button = pn.widgets.Button(
            label="Open in History", width=160, disabled=True, css_classes=["evidence-history"]
        )
        self.history_button.on_click(lambda _e: self.open_history())
        self.layout = pn.Column(
            safe.heading("Why it fired, with the values each rule saw", 4),
            self.message,
            self.rules,
            pn.FlexBox(
                safe.heading("The card around the alert (event time)", 4), self.history_button
            ),
            self.plot,
            self.timeline,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout

    async def show(self, alert: Mapping[str, Any], rules: Mapping[str, Any]) -> None:
        """Load and show the evidence and timeline of ``alert``."""
        try:
            found = await asyncio.to_thread(load_evidence, self.dsn, alert, rules)
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("Cannot load the evidence: {}", exc))
            return
        self.render(found)

    def render(self, found: Mapping[str, Any]) -> None:
        at, card = found["at"], found["card"]
        with pn.io.hold():
            self.target = (card, at)
            self.rules.value = found["rules"]
            safe.show(
                self.message,
                safe.text(
                    ""
                    if found["stored"]
                    else "No stored evidence for this alert (scored before evidence was kept)."
                ),
            )
            frame = found["timeline"]
            self.timeline.value = timeline_rows(frame, at)
            self.plot.objects = (
                [pn.pane.HoloViews(timeline_plot(frame, at, card), sizing_mode="stretch_width")]
                if len(frame)
                else []
            )
            self.history_button.disabled = self.on_history is None

    def open_history(self) -> None:
        """Hand the card and the alert's moment to the History page."""
        if self.target is not None and self.on_history is not None:
            self.on_history(*self.target)
