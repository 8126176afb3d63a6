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


TOAST_SHOWN_MS = 4000  # how long a High-risk toast stays on screen

# One toast at a time in the page's bottom-right corner: it fades in, stays and fades out by
# itself, and lets clicks through to what is under it.
_TOAST_CSS = f"""
:host {{ position: fixed !important; right: 16px; bottom: 16px; z-index: 1000;
  max-width: min(420px, calc(100vw - 32px)); pointer-events: none; }}
.wb-toast {{ background: #dc3545; color: #fff; border-radius: 4px; padding: 10px 14px;
  box-shadow: 0 3px 12px rgba(0, 0, 0, 0.3); font-size: 14px; line-height: 1.35;
  animation: wb-toast {TOAST_SHOWN_MS}ms ease-in-out forwards; }}
@keyframes wb-toast {{
  0% {{ opacity: 0; transform: translateY(12px); }}
  8%, 88% {{ opacity: 1; transform: none; }}
  100% {{ opacity: 0; visibility: hidden; }}
}}
@media (prefers-reduced-motion: reduce) {{
  .wb-toast {{ animation-timing-function: steps(1, end); }}
}}
"""


class ToastArea(pn.viewable.Viewer):
    """Where a session shows its High-risk toasts: one fixed pane whose HTML changes.

    Panel's notifications add a Bokeh model per toast (and remove it when it is gone), and each
    added model makes Bokeh walk every model of the session's document: about 30 ms of the
    server's time per toast on the Live page. Here a toast is one property change of a
    model the page already has."""

    def __init__(self) -> None:
        super().__init__()
        self._shown = 0
        self.pane = safe.pane(
            stylesheets=[_TOAST_CSS], css_classes=["wb-toast-area"], sizing_mode="fixed"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane

    def show(self, message: safe.Html) -> None:
        """Show ``message`` (a plain str is escaped) in place of the last one; each toast is a new
        element, so its fade-in and fade-out start again."""
        self._shown += 1
        safe.show(
            self.pane,
            safe.html(
                '<div class="wb-toast" role="status" data-toast="{}">{}</div>',
                self._shown,
                message,
            ),
        )
