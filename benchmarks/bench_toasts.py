"""What a High-risk toast costs the dashboard server, per toast, on a session's document.

A session's whole page is built in one Bokeh document (header, banner, the tabs with the Live
page built, Panel's notification area, the session's toast area), the way ``panel serve``
builds it. Then toasts are shown alternately both ways, and each is timed on the server:

1. Panel's notification (``pn.state.notifications.send``): a new ``Notification`` model in
   the document, removed again when the browser says the toast is gone;
2. the session's :class:`~workbench.dashboard.live_toasts.ToastArea`: the new HTML of a pane
   the page has.

The time includes what Bokeh does for the document when a model is added or removed (it walks
every model of the document), and serialising the change as it is sent to the browser.
Prints figures; no pass/fail. No database is needed.

Usage: python benchmarks/bench_toasts.py [--toasts 60] [--quick]   (--quick: 20 toasts.)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import panel as pn
from _report import figure
from bokeh.document import Document
from bokeh.document.events import DocumentChangedEvent
from bokeh.protocol import Protocol
from panel.io.notifications import NotificationArea
from panel.io.state import set_curdoc

from workbench.dashboard import safe
from workbench.dashboard.hub import Hub
from workbench.dashboard.session import LIVE_TAB, Session


class Sent:
    """Serialises each change of the document into a PATCH-DOC message, as a server session
    does before sending it to the browser; counts the messages."""

    def __init__(self, doc: Document) -> None:
        self.protocol, self.messages = Protocol(), 0
        doc.callbacks.on_change(self)

    def __call__(self, event: DocumentChangedEvent) -> None:
        self.protocol.create("PATCH-DOC", [event])
        self.messages += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toasts", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="20 toasts")
    args = parser.parse_args()
    n = 20 if args.quick else args.toasts

    pn.extension("tabulator", "codeeditor", notifications=True, sizing_mode="stretch_width")
    doc = Document()
    with set_curdoc(doc):
        session = Session(Hub(), "postgresql://unused")
        session.build(LIVE_TAB)
        view = pn.Column(session.banner, session.tabs, session.toast_area)
        doc.add_root(view.get_root(doc))
        area = NotificationArea()
        doc.add_root(area.get_root(doc))
        sent = Sent(doc)
        models = len(doc.models)
        message = safe.html(
            "High risk {}: card {}, amount {}", 91, "4000-1234-5678-9010", "1,234.50"
        )
        notify, shown = [], []
        for i in range(n):
            t0 = time.perf_counter()
            area.send(message, duration=4000, type="error")
            mid = time.perf_counter()
            area.notifications[0]._destroyed = True  # the browser: this toast is gone
            t1 = time.perf_counter()
            session.toast_area.show(message)
            t2 = time.perf_counter()
            notify.append(t1 - t0)
            shown.append(t2 - t1)
            if i == 0:
                first_send = mid - t0
    a, b = np.median(notify) * 1000, np.median(shown) * 1000
    load = os.getloadavg()[0]
    print(f"session document: {models} models; {n} toasts each way; load {load:.1f}")
    worst_a, worst_b = max(notify) * 1e3, max(shown) * 1e3
    print(f"Panel notification (added, then removed): p50 {a:7.2f} ms  max {worst_a:7.2f} ms")
    print(f"  (the first send alone: {first_send * 1e3:.2f} ms)")
    print(f"toast area (new HTML of one pane):        p50 {b:7.2f} ms  max {worst_b:7.2f} ms")
    print(f"{sent.messages} document patches serialised")
    figure("toast, server time (Panel notification)", a, "ms")
    figure("toast, server time (toast area)", b, "ms", anchor="Panel notification", ratio=b / a)


if __name__ == "__main__":
    main()
