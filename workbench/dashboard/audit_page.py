"""The audit page: who did, or was refused, what and when — read only, admins only.

The session shows this tab only to an admin, and every load checks
:attr:`~workbench.auth.roles.Action.READ_AUDIT` again on the server
(:meth:`~workbench.dashboard.actions.Actions.read_audit`): a viewer's session that calls
:meth:`AuditView.load` directly gets a refusal, itself audited, and no rows.

Rows are shown newest first, a page at a time (``PAGE_ROWS``), filtered by actor, action
(a prefix: ``rules.`` is every rule action) and outcome. **Older** pages back by id (keyset
paging: ``id < the oldest id shown``), so a page costs the same however long the trail is and
rows appended meanwhile never shift the pages. Every value is shown as text in a read-only
table; ``before`` / ``after`` are compact JSON.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pandas as pd
import panel as pn

from workbench.auth.roles import AccessDenied, Identity
from workbench.dashboard import clock, safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.parts import read_only_table, schedule
from workbench.errors import WorkbenchError
from workbench.storage import tables

__all__ = ["AuditView", "audit_rows"]

PAGE_ROWS = 100
COLUMNS = [
    "id",
    "at",
    "actor",
    "role",
    "provider",
    "address",
    "action",
    "object",
    "outcome",
    "before",
    "after",
    "detail",
]
ANY = "any"


class AuditView(pn.viewable.Viewer):
    """Filters, a read-only page of the audit trail and the Newest / Older buttons."""

    def __init__(self, dsn: str, identity: Identity, *, page_rows: int = PAGE_ROWS, **params):
        super().__init__(**params)
        self.actions = Actions(identity, dsn)
        self.page_rows = page_rows
        self.loaded = False
        self.frame = pd.DataFrame(columns=COLUMNS)
        self.actor = pn.widgets.TextInput(label="Actor", placeholder="any", width=180)
        self.action = pn.widgets.TextInput(
            label="Action (prefix)", placeholder="e.g. rules.", width=180
        )
        self.outcome = pn.widgets.Select(
            label="Outcome", options=[ANY, *tables.AUDIT_OUTCOMES], value=ANY, width=120
        )
        self.newest = pn.widgets.Button(label="Newest", color="primary", width=100)
        self.older = pn.widgets.Button(label="Older", width=100, disabled=True)
        self.newest.on_click(lambda _e: schedule(self.load))
        self.older.on_click(lambda _e: schedule(self.load_older))
        self.message = safe.preformatted(css_classes=["audit-message"])
        self.table = read_only_table(
            pd.DataFrame(columns=COLUMNS), "audit-table", 480, times={"at": clock.WALL}
        )
        self.layout = pn.Column(
            pn.FlexBox(self.actor, self.action, self.outcome, self.newest, self.older),
            self.message,
            self.table,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout

    def filters(self) -> dict[str, Any]:
        """The filters as :func:`workbench.storage.audit.recent` takes them."""
        actor = self.actor.value.strip()
        action = self.action.value.strip()
        outcome = self.outcome.value
        return {
            "actor": actor or None,
            "action": action or None,
            "outcome": None if outcome == ANY else outcome,
        }

    async def load(self, before_id: int | None = None) -> pd.DataFrame | None:
        """The newest page (or the page older than ``before_id``); None when refused."""
        try:
            frame = await asyncio.to_thread(
                self.actions.read_audit, self.page_rows, before_id=before_id, **self.filters()
            )
        except AccessDenied as exc:
            self._show(pd.DataFrame(columns=COLUMNS), f"Not allowed: {exc}")
            return None
        except WorkbenchError as exc:
            self._say(f"Cannot read the audit trail: {exc}")
            return None
        self.loaded = True
        older = len(frame) == self.page_rows
        where = "older rows" if before_id is not None else "newest first"
        self._show(frame, f"{len(frame)} row(s), {where}" + ("" if older else "; no older rows"))
        self.older.disabled = not older
        return frame

    async def load_older(self) -> pd.DataFrame | None:
        """The page before the oldest row shown."""
        if self.frame.empty:
            return await self.load()
        return await self.load(before_id=int(self.frame["id"].min()))

    def _show(self, frame: pd.DataFrame, message: str) -> None:
        self.frame = frame
        with pn.io.hold():
            self.table.value = audit_rows(frame)
            self._say(message)
            if frame.empty:
                self.older.disabled = True

    def _say(self, message: str) -> None:
        """The page's message line: plain text in an escaped ``<pre>`` (shown as is)."""
        safe.show_text(self.message, message)


def audit_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Audit rows as the page shows them: times as text, ``before`` / ``after`` as JSON."""
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    out = frame[COLUMNS].copy()
    out["at"] = clock.stamp(out["at"])
    for name in ("before", "after"):
        out[name] = [_json(v) for v in out[name]]
    for name in ("role", "provider", "address", "object", "detail"):
        out[name] = out[name].fillna("").astype(str)
    return out.reset_index(drop=True)


def _json(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
