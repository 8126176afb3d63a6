"""High-risk toasts of one session: at most one every :data:`TOAST_EVERY_S`, the High
transactions in between counted into the next, and a per-session mute (an analyst working a
case mutes them; they are still counted in the alert feed and the KPIs)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import panel as pn

from workbench.dashboard import safe
from workbench.dashboard.live_tables import number
from workbench.dashboard.theme import fmt_money, fmt_number
from workbench.storage.notify import HighRow

TOAST_EVERY_S = 10.0  # at most one toast this often; High transactions in between are counted


class Toasts(pn.viewable.Viewer):
    """``notify`` shows a toast (None: no toasts); it is given
    :class:`~workbench.dashboard.safe.Html` (card ids and rule ids escaped)."""

    def __init__(
        self,
        notify: Callable[[safe.Html], None] | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.notify = notify
        self._clock = clock
        self.mute = pn.widgets.Checkbox(label="Mute High-risk toasts", css_classes=["mute-toasts"])
        self._last = -math.inf
        self._untoasted = 0

    def __panel__(self) -> pn.viewable.Viewable:
        return self.mute

    def add(self, alerts: list[HighRow]) -> None:
        """New High transactions: a toast for the newest, unless one was shown lately."""
        if self.notify is None or not alerts:
            return
        self._untoasted += len(alerts)
        if self.mute.value:
            return
        now = self._clock()
        if now - self._last < TOAST_EVERY_S:
            return
        a = alerts[-1]
        more = self._untoasted - 1
        self.notify(
            safe.html(
                "High risk {}: card {}, amount {} ({}){}",
                fmt_number(number(a.risk_score)),
                a.card_id,
                fmt_money(number(a.amount)),
                ", ".join(a.rules),
                f" — and {more} more High" if more > 0 else "",
            )
        )
        self._last, self._untoasted = now, 0
