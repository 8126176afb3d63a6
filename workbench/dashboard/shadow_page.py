"""The shadow rule set on the Rules page: the challenger in effect and its KPIs, read-only.

Which challenger is scored beside the active rule set (``workbench rules shadow set``), and
over a range of **event time** ending at the stream's now: the band migration (active band
by row, shadow band by column), hits per rule on each side with their precision on
simulator truth and on analyst labels (named apart), and each side's High rows. The figures
come from :func:`workbench.storage.shadow_kpis.comparison` (aggregates only: a load costs
three grouped queries over the range, never rows).

Use::

    view = ShadowView(dsn, actions)        # a pn.viewable.Viewer
    await view.load()                      # or the Refresh button; the comparison shown

Promotion is two steps: *Promote…* names the challenger shown, *Confirm promote* promotes
exactly that version (:meth:`workbench.dashboard.actions.Actions.promote_shadow` checks the
role on the server, audits, and refuses when the challenger changed in between). The
challenger's rollout (the percent of cards it decides for, :mod:`workbench.scoring.rollout`)
is shown and set the same way: *Set rollout* applies the percent entered to the challenger
shown (:meth:`~workbench.dashboard.actions.Actions.set_shadow_rollout`, audited, refused when
the challenger changed). The buttons are enabled for rule authors and admins only; the
server-side check is what counts. Everything shown is escaped text (rule ids and versions
come from rule files).
"""

from __future__ import annotations

import asyncio

import pandas as pd
import panel as pn

from workbench.auth.roles import AccessDenied, Action, allowed
from workbench.dashboard import safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.parts import read_only_table, schedule
from workbench.dashboard.precision import RANGES
from workbench.errors import WorkbenchError
from workbench.storage import labels, shadow, shared_store
from workbench.storage.shadow_kpis import ShadowComparison, comparison

__all__ = ["ShadowView", "percent"]


class ShadowView(pn.viewable.Viewer):
    """Range selector, Refresh, the challenger line and three KPI tables."""

    def __init__(self, dsn: str, actions: Actions | None = None, **params) -> None:
        super().__init__(**params)
        self.dsn = dsn
        self.actions = actions
        self.result: ShadowComparison | None = None
        self.challenger: str | None = None  # the version shown (what Promote… names)
        self.pending: str | None = None  # the version Confirm promote will promote
        may = actions is not None and allowed(actions.identity.role, Action.PROMOTE_SHADOW)
        self.promote_button = pn.widgets.Button(
            label="Promote…", color="warning", width=120, disabled=True, visible=may
        )
        self.confirm_button = pn.widgets.Button(
            label="Confirm promote", color="danger", width=150, visible=False
        )
        self.rollout: int | None = None  # the rollout shown
        may_roll = actions is not None and allowed(actions.identity.role, Action.SHADOW_ROLLOUT)
        self.rollout_input = pn.widgets.IntInput(
            label="Rollout % of cards", start=0, end=100, value=0, width=140, visible=may_roll
        )
        self.rollout_button = pn.widgets.Button(
            label="Set rollout", color="warning", width=120, disabled=True, visible=may_roll
        )
        self.rollout_button.on_click(lambda _e: schedule(self.set_rollout))
        self.promote_button.on_click(lambda _e: self.ask())
        self.confirm_button.on_click(lambda _e: schedule(self.promote))
        self.range = pn.widgets.Select(
            label="Event time", options=list(RANGES), value="last 24 h", width=160
        )
        self.refresh = pn.widgets.Button(label="Refresh", width=100)
        self.refresh.on_click(lambda _e: schedule(self.load))
        self.message = safe.preformatted(css_classes=["shadow-message"])
        self.migration = read_only_table(pd.DataFrame(), "shadow-migration", 140)
        self.rules = read_only_table(pd.DataFrame(), "shadow-rules", 260)
        self.flagged = read_only_table(pd.DataFrame(), "shadow-flagged", 110)
        self.layout = pn.Column(
            safe.heading("Shadow rule set (challenger)", 4),
            pn.FlexBox(
                self.range,
                self.refresh,
                self.promote_button,
                self.confirm_button,
                self.rollout_input,
                self.rollout_button,
            ),
            self.message,
            self.migration,
            self.flagged,
            self.rules,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout

    async def load(self) -> ShadowComparison | None:
        """Read and show the KPIs for the selected range; None when the read failed."""
        try:
            result, challenger = await asyncio.to_thread(self._read, RANGES[self.range.value])
        except WorkbenchError as exc:
            safe.show_text(self.message, f"Cannot read the shadow rule set: {exc}")
            return None
        self.result = result
        self.challenger = None if challenger is None else str(challenger["version"])
        self.rollout = None if challenger is None else int(challenger["rollout"])
        self.promote_button.disabled = self.challenger is None
        self.rollout_button.disabled = self.challenger is None
        if self.rollout is not None:
            self.rollout_input.value = self.rollout
        if self.pending != self.challenger:
            self._clear_pending()
        if challenger is not None:
            line = f"challenger {challenger['version']} set by {challenger['author']}, " + (
                f"deciding for {self.rollout} % of the cards"
                if self.rollout
                else "in the shadow only (rollout 0 %)"
            )
        elif result.version is not None:
            line = f"no challenger in effect; last scored: {result.version}"
        else:
            line = "no challenger in effect (workbench rules shadow set VERSION|PATH)"
        with pn.io.hold():
            self.migration.value = result.migration.rename_axis("active \\ shadow").reset_index()
            self.flagged.value = percent(result.flagged.reset_index())
            self.rules.value = percent(result.rules)
            safe.show_text(
                self.message,
                f"{line}; {result.rows:,} transactions scored by both, "
                f"{result.band_changes:,} in another band",
            )
        return result

    def ask(self) -> None:
        """First step: name the challenger that Confirm promote will make active."""
        if self.challenger is None:
            return
        self.pending = self.challenger
        self.confirm_button.visible = True
        safe.show_text(
            self.message,
            f"Promote {self.pending} to the active rule set? Workers switch at their next "
            "batch; the current active set stays in the history for a rollback.",
        )

    async def promote(self) -> dict | None:
        """Second step: promote exactly the version asked about (refused when the
        challenger changed since, or for a role below rule author; both audited)."""
        if self.actions is None or self.pending is None:
            return None
        expected, self.pending = self.pending, None
        try:
            done = await asyncio.to_thread(self.actions.promote_shadow, expected)
        except (AccessDenied, WorkbenchError) as exc:
            self._clear_pending()
            safe.show_text(self.message, f"Not promoted: {exc}")
            return None
        self._clear_pending()
        await self.load()
        safe.show_text(self.message, f"{done['version']} is now the active rule set.")
        return done

    async def set_rollout(self) -> dict | None:
        """Let the challenger shown decide for the percent entered (refused when it changed
        since it was shown, for a bad percent, or for a role below rule author; audited)."""
        if self.actions is None or self.challenger is None:
            return None
        percent = self.rollout_input.value
        try:
            was = await asyncio.to_thread(self.actions.set_shadow_rollout, percent, self.challenger)
        except (AccessDenied, WorkbenchError) as exc:
            safe.show_text(self.message, f"Rollout not changed: {exc}")
            return None
        await self.load()
        safe.show_text(
            self.message,
            f"{was['version']} now decides for {percent} % of the cards (was {was['rollout']} %).",
        )
        return was

    def _clear_pending(self) -> None:
        self.pending = None
        self.confirm_button.visible = False

    def _read(self, back: pd.Timedelta | None):
        store = shared_store(self.dsn)
        start = None
        if back is not None:
            now = labels.stream_now(store)
            start = None if now is None else now - back
        return comparison(store, start), shadow.current(store)


def percent(frame: pd.DataFrame) -> pd.DataFrame:
    """Precision columns as percentage text ("" when nothing to measure on)."""
    out = frame.copy()
    for name in out.columns:
        if name.endswith("precision"):
            values = (out[name].astype("float64") * 100).round(1)
            out[name] = values.astype("str").where(values.notna(), "") + " %"
            out[name] = out[name].where(values.notna(), "")
    return out
