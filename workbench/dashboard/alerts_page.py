"""The alerts page of one session: the open-alert queue, one alert explained, dispositions.

Selecting an alert shows its transaction, every transaction attached to it, the card's recent
history and every rule that fired with its points and what the rule says (from the rule-set
version that scored it, as stored in ``rule_sets``). The three buttons close the alert with
the analyst's verdict, stored in PostgreSQL with the login's user and the time
(``alerts.disposition``, ``assignee``, ``closed_at``), where backtests and notebooks read it
back as labels. Closing needs the analyst role: the buttons follow the session's role and
the close is checked again and audited on the server
(:meth:`~workbench.dashboard.actions.Actions.dispose`).

The case page (:mod:`.case_view`) shows the same view scoped to one case
(:meth:`AlertsView.show_case`): its queue is then the case's alerts, and :attr:`AlertsView.detail`
— the selected alert explained — is the slot for more about an alert (evidence, timeline).

Database calls run in a worker thread (``asyncio.to_thread``), so a slow or absent database
never blocks the server's event loop or other sessions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pandas as pd
import panel as pn

from workbench.auth.roles import AccessDenied, Action, Identity, allowed
from workbench.dashboard import clock, safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.evidence import EvidenceView
from workbench.dashboard.parts import read_only_table, schedule
from workbench.errors import RuleError, RuleSetError, WorkbenchError
from workbench.rules import parse_rules
from workbench.storage import Store, shadow, shared_store

log = logging.getLogger(__name__)

QUEUE_ROWS = 200
HISTORY_ROWS = 50
DISPOSITIONS = {
    "confirmed_fraud": ("Confirmed fraud", "danger"),
    "false_positive": ("False positive", "success"),
    "valuable": ("Valuable alert", "primary"),
}
QUEUE_COLUMNS = ["id", "opened", "card_id", "risk_score", "band", "hit_count", "rules"]


class AlertsView:
    """Queue, explanation and disposition buttons for one session."""

    def __init__(self, dsn: str, identity: Identity) -> None:
        self.dsn = dsn
        self.identity = identity
        self.actions = Actions(identity, dsn)
        self.can_dispose = allowed(identity.role, Action.DISPOSE)
        self.selected: dict[str, Any] | None = None
        self.case_id: int | None = None  # set: the queue is this case's alerts
        self._open_count: int | None = None  # open alerts when the queue was loaded
        self.queue = read_only_table(
            _queue_rows(pd.DataFrame()),
            "alert-queue",
            420,
            selectable=1,
            times={"opened": f"opened, {clock.EVENT}"},
        )
        self.queue.param.watch(self._on_selection, "selection")
        self.refresh_button = pn.widgets.Button(label="Refresh", color="light", width=160)
        self.refresh_button.on_click(lambda _e: schedule(self.refresh))
        self.notes = pn.widgets.TextAreaInput(
            label="Notes", height=70, sizing_mode="stretch_width", disabled=not self.can_dispose
        )
        self.buttons = {}
        for disposition, (label, kind) in DISPOSITIONS.items():
            button = pn.widgets.Button(label=label, color=kind, disabled=True, width=150)
            button.on_click(functools.partial(self._on_close, disposition))
            self.buttons[disposition] = button
        self.summary = safe.pane(
            safe.html("<p>Select an alert in the queue.</p>"), css_classes=["alert-summary"]
        )
        self.message = safe.pane(css_classes=["alert-message"])
        self.explanation = read_only_table(
            pd.DataFrame(columns=["rule", "points", "description", "when"]),
            "alert-explanation",
            220,
        )
        self.attached = read_only_table(
            pd.DataFrame(columns=["time", "tx_id", "risk_score", "band", "rules"]),
            "alert-attached",
            180,
        )
        self.card = read_only_table(pd.DataFrame(columns=_CARD_COLUMNS), "card-history", 260)
        self.evidence = EvidenceView(dsn)  # the session sets .on_history (History drill-down)
        self.queue_column = pn.Column(
            pn.Row(safe.heading("Open alerts"), self.refresh_button),
            self.queue,
            sizing_mode="stretch_width",
        )
        # The selected alert explained: the slot for anything more about one alert.
        self.detail = pn.Column(
            self.summary,
            pn.Row(*self.buttons.values()),
            self.notes,
            self.message,
            safe.heading("Why it fired", 4),
            self.explanation,
            self.evidence,
            safe.heading("Transactions attached to this alert", 4),
            self.attached,
            safe.heading("The card's recent history", 4),
            self.card,
            sizing_mode="stretch_width",
        )
        self.panel = pn.Row(self.queue_column, self.detail, sizing_mode="stretch_width")

    # -- scheduling ---------------------------------------------------------------------

    def note_open_alerts(self, count: int) -> None:
        """Called by the live pull while the page is shown. The queue is not reloaded under
        the analyst's mouse: the Refresh button says how many alerts are open now."""
        label = "Refresh" if count == self._open_count else f"Refresh ({count:,} open)"
        if self.refresh_button.label != label:
            self.refresh_button.label = label

    # -- actions ------------------------------------------------------------------------

    async def refresh(self) -> None:
        try:
            frame = await asyncio.to_thread(self._read_queue)
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Cannot load alerts:</b> {}", exc))
            return
        rows = _queue_rows(frame)
        chosen = self._chosen_id()
        keep = [] if chosen is None else list(rows.index[rows["id"] == chosen][:1])
        with pn.io.hold():
            self.queue.value = rows
            if keep != list(self.queue.selection):  # never echo an unchanged selection
                self.queue.selection = keep
            self._open_count = len(frame) if len(frame) < QUEUE_ROWS else None
            self.refresh_button.label = "Refresh"

    async def show_case(self, case_id: int | None) -> None:
        """Scope the queue to one case's alerts and explain its first (highest score)."""
        self.case_id = None if case_id is None else int(case_id)
        self.selected = None
        await self.refresh()
        frame = self.queue.value
        if len(frame):
            await self.select(int(frame.iloc[0]["id"]))
            self.queue.selection = [0]  # after select: the watcher sees it shown already

    def _chosen_id(self) -> int | None:
        """The alert the analyst has selected: in the table (a click may have arrived while
        the queue was being reloaded), else the one shown."""
        frame, rows = self.queue.value, self.queue.selection
        if rows and rows[0] < len(frame):
            return int(frame.iloc[rows[0]]["id"])
        return None if self.selected is None else int(self.selected["id"])

    async def select(self, alert_id: int, *, keep_message: bool = False) -> None:
        try:
            detail = await asyncio.to_thread(self._read_detail, int(alert_id))
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Cannot load alert {}:</b> {}", alert_id, exc))
            return
        if detail is None:
            safe.show(self.message, safe.html("Alert {} no longer exists.", alert_id))
            return
        self.selected = detail["alert"]
        with pn.io.hold():
            safe.show(self.summary, _summary_html(detail["alert"], detail["transaction"]))
            self.explanation.value = detail["explanation"]
            self.attached.value = detail["attached"]
            self.card.value = detail["card"]
            if not keep_message:
                safe.show(self.message, safe.EMPTY)
            is_open = detail["alert"]["status"] == "open"
            for button in self.buttons.values():
                button.disabled = not (is_open and self.can_dispose)
        await self.evidence.show(detail["alert"], detail["rules"])

    async def close(self, disposition: str) -> None:
        if self.selected is None:
            return
        alert_id = int(self.selected["id"])
        user = self.identity.user  # from the login, never from the page
        notes = self.notes.value.strip() or None
        try:
            await asyncio.to_thread(self.actions.dispose, alert_id, disposition, notes)
        except AccessDenied as exc:
            self._say(safe.html("<b>Not allowed:</b> {}", str(exc)))
            return
        except WorkbenchError as exc:
            self._say(safe.html("<b>Not saved:</b> {}", exc))
            return
        label = DISPOSITIONS[disposition][0]
        self._say(safe.html("Alert {} closed as <b>{}</b> by {}.", alert_id, label, user))
        for button in self.buttons.values():
            button.disabled = True
        self.notes.value = ""
        await self.refresh()
        await self.select(alert_id, keep_message=True)

    def _say(self, message: safe.Html) -> None:
        """The page's message line (escaped already: built with :func:`safe.html`)."""
        safe.show(self.message, message)

    # -- callbacks ----------------------------------------------------------------------

    def _on_selection(self, event) -> None:
        rows = event.new
        frame = self.queue.value
        if not rows or rows[0] >= len(frame):
            return
        alert_id = int(frame.iloc[rows[0]]["id"])
        if self.selected is not None and int(self.selected["id"]) == alert_id:
            return  # the same alert, re-selected after the queue reloaded
        schedule(functools.partial(self.select, alert_id))

    def _on_close(self, disposition: str, _event) -> None:
        schedule(functools.partial(self.close, disposition))

    # -- database (worker threads) ------------------------------------------------------

    def _read_queue(self) -> pd.DataFrame:
        if self.case_id is not None:
            return shared_store(self.dsn).cases.alerts(self.case_id)
        return shared_store(self.dsn).alerts.page(status="open", limit=QUEUE_ROWS)

    def _read_detail(self, alert_id: int) -> dict[str, Any] | None:
        store = shared_store(self.dsn)
        frame = store.alerts.page(limit=1, alert_id=alert_id)
        if frame.empty:
            return None
        found = frame.iloc[0].to_dict()
        hits = store.alerts.hits(alert_id)
        tx = store.transactions.get(found["tx_id"], found["ts"])
        card = store.transactions.card_history(found["card_id"], limit=HISTORY_ROWS)
        rules = _rule_texts(store, found.get("rule_set_version"))
        return {
            "alert": found,
            "transaction": tx,
            "explanation": explanation(found.get("rules") or {}, rules),
            "rules": rules,
            "attached": _attached_rows(hits),
            "card": _card_rows(card),
        }


def explanation(points: dict[str, float], rules: dict[str, Any]) -> pd.DataFrame:
    """Every rule that fired with its points (largest first), description and condition."""
    rows = sorted(points.items(), key=lambda kv: -float(kv[1] or 0))
    return pd.DataFrame(
        {
            "rule": [r for r, _ in rows],
            "points": [float(p) for _, p in rows],
            "description": [getattr(rules.get(r), "description", "") for r, _ in rows],
            "when": [getattr(rules.get(r), "when", "") for r, _ in rows],
        }
    )


@functools.lru_cache(maxsize=16)
def _parsed_rules(version: str, files: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    try:
        ruleset = parse_rules(dict(files))
    except (RuleError, RuleSetError) as exc:
        log.warning("rule set %s no longer parses: %s", version, exc)
        return {}
    return {rule.id: rule for rule in ruleset.rules}


def _rule_texts(store: Store, version: str | None) -> dict[str, Any]:
    if not isinstance(version, str) or not version:  # NULL reads back as NaN
        return {}
    # an alert a challenger raised under a rollout: its rules may exist only as the challenger
    files = store.rule_sets.files(version) or shadow.files(store, version)
    return _parsed_rules(version, tuple(sorted(files.items()))) if files else {}


_CARD_COLUMNS = [
    "time", "amount", "currency", "merchant_category", "country", "channel", "risk_score", "band",
]  # fmt: skip


def _time(series: pd.Series) -> pd.Series:
    return clock.stamp(series)


def _queue_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    return pd.DataFrame(
        {
            "id": frame["id"].astype("int64"),
            "opened": _time(frame["ts"]),
            "card_id": frame["card_id"],
            "risk_score": frame["risk_score"].round(1),
            "band": frame["band"],
            "hit_count": frame["hit_count"].astype("int64"),
            "rules": [", ".join(sorted(r or {})) for r in frame["rules"]],
        }
    )


def _attached_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": _time(frame["ts"]) if not frame.empty else [],
            "tx_id": frame["tx_id"] if not frame.empty else [],
            "risk_score": frame["risk_score"].round(1) if not frame.empty else [],
            "band": frame["band"] if not frame.empty else [],
            "rules": [", ".join(sorted(r or {})) for r in frame["rules"]],
        }
    )


def _card_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=_CARD_COLUMNS)
    out = frame[_CARD_COLUMNS[1:]].copy()
    out.insert(0, "time", _time(frame["ts"]))
    out["amount"] = out["amount"].round(2)
    out["risk_score"] = out["risk_score"].round(1)
    return out.reset_index(drop=True)


def _summary_html(alert: dict[str, Any], tx: pd.DataFrame) -> safe.Html:
    """The selected alert in words; every stored value (card, terminal, device, merchant,
    the analyst's name) is escaped."""
    closed = (
        safe.html(" ({} by {})", alert["disposition"], alert["assignee"])
        if isinstance(alert.get("disposition"), str)
        else safe.EMPTY
    )
    parts = [
        safe.html("<h3>Alert {} — {}{}</h3>", alert["id"], alert["status"], closed),
        safe.html(
            "<p>Card <b>{}</b>, risk score <b>{:.1f}</b> ({}), {} transaction(s) attached, "
            "rule set <code>{}</code>.</p>",
            alert["card_id"],
            alert["risk_score"],
            alert["band"],
            int(alert["hit_count"]),
            alert["rule_set_version"] if isinstance(alert["rule_set_version"], str) else "unknown",
        ),
    ]
    if not tx.empty:
        t = tx.iloc[0]
        parts.append(
            safe.html(
                "<p>Transaction <code>{}</code> at {} ({}): amount <b>{:,.2f} {}</b>, merchant {} "
                "(terminal {}), {}, {}, device {}.</p>",
                t["tx_id"],
                clock.stamp(t["ts"]),
                clock.label(),
                t["amount"],
                t["currency"],
                t["merchant_category"],
                t["terminal_id"],
                t["country"],
                t["channel"],
                t["device_id"],
            )
        )
    return safe.join(parts)
