"""A small live run inside a notebook kernel: pipeline, feed, hub and the dashboard's live view.

:class:`LiveRun` starts a simulator pipeline worker in a background thread (its own asyncio
loop) for a bounded ``duration``, a :class:`~workbench.dashboard.feed.Feed` that LISTENs for
its batch summaries into a private :class:`~workbench.dashboard.hub.Hub`, and a
:class:`~workbench.dashboard.live.LiveView` (the dashboard's own live page) for the notebook.
The view changes only in :meth:`LiveRun.pull`.

In a notebook front end, :meth:`LiveRun.follow` pulls from a Panel periodic callback and the
kernel stays free. That matters: Panel sends a view's updates only once the browser has opened
its comm channel to the kernel, and a busy kernel (a cell blocked in ``wait()``) answers that
only when the cell ends, so a blocking cell freezes the view until the run is over.
:meth:`LiveRun.wait` blocks until the end; it is for scripts and batch runs (nbclient), which
have no browser.

The hub's per-second aggregates are also offered as a HoloViews stream,
:attr:`LiveRun.seconds` (an ``hv.streams.Buffer`` of at most :data:`SECONDS` rows: bounded),
for analysts' own live plots (:meth:`LiveRun.trend` is one). Everything stops by itself.

>>> # run = LiveRun(dsn, duration=20).start(); run.follow(); run.view   # live, kernel free
>>> # run.trend()                                # a HoloViews DynamicMap fed by run.seconds
>>> # stats = run.wait()                         # scripts only: blocks until the end
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import panel as pn
import param

from workbench.dashboard import safe
from workbench.dashboard.feed import Feed
from workbench.dashboard.hub import SECONDS, Hub, Second
from workbench.dashboard.live import LiveView
from workbench.pipeline.stats import PipelineStats
from workbench.pipeline.worker import build_pipeline, run_with_status
from workbench.settings import Settings

log = logging.getLogger(__name__)

# Columns of :attr:`LiveRun.seconds`. Time is epoch milliseconds, what Bokeh's datetime axes
# count in: streaming datetime64 values into a notebook's Bokeh source echoes errors back.
SECOND_COLUMNS = ("t", "rows", "mean_score", "p95_score", "low", "medium", "high")


def seconds_frame(s: Sequence[Second]) -> pd.DataFrame:
    """Per-second aggregates of the hub as rows of :attr:`LiveRun.seconds`."""
    return pd.DataFrame(
        {
            "t": [x.t * 1000.0 for x in s],
            "rows": [x.rows for x in s],
            "mean_score": [x.mean_score for x in s],
            "p95_score": [x.p95_score for x in s],
            "low": [x.low for x in s],
            "medium": [x.medium for x in s],
            "high": [x.high for x in s],
        },
        columns=list(SECOND_COLUMNS),
    ).astype({"t": "float64", "mean_score": "float64", "p95_score": "float64"})


class OneWayTable(pn.viewable.Viewer):
    """A read-only table for the notebook's live view: an HTML table the kernel rewrites and
    the browser never writes back to, with the ``value``/``stream`` of a Tabulator.

    Not a Tabulator because, in a notebook, Tabulator's browser side sends its data back over
    the comm after the kernel streams or replaces rows; by then the kernel's table has another
    length and Panel fails on the event (``ValueError: Must have equal len keys and value when
    setting with an iterable``, in ``Tabulator._update_column``), after which the view no
    longer updates. In ``panel serve`` the dashboard keeps its Tabulators.
    """

    value = param.DataFrame(doc="The rows, oldest first (shown newest first).")

    def __init__(self, frame: pd.DataFrame, css: str, height: int, **_: Any) -> None:
        super().__init__(value=frame)
        self._pane = safe.frame_pane(  # cells escaped: transaction fields are untrusted text
            frame,
            index=False,
            height=height,
            sizing_mode="stretch_width",
            css_classes=[css],
            styles={"overflow-y": "auto"},
        )
        self.param.watch(self._show, "value")

    def stream(self, rows: pd.DataFrame, rollover: int, follow: bool = False) -> None:
        self.value = pd.concat([self.value, rows], ignore_index=True).tail(rollover)

    def _show(self, event: param.parameterized.Event) -> None:
        safe.show_frame(self._pane, event.new.iloc[::-1])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane


class LiveRun:
    """A simulator pipeline for ``duration`` seconds at ``rate`` transactions per second,
    plus a live view of it. ``overrides`` replace settings by name (e.g. ``rules_dir``)."""

    def __init__(
        self,
        dsn: str,
        *,
        duration: float = 20.0,
        rate: float = 500.0,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        base = settings or Settings.load()
        # Simulated time starts now, so the run adds new rows next to any stored history
        # (the same seed from the same start would only repeat stored transactions).
        overrides.setdefault("sim_start", pd.Timestamp.now(tz="UTC").isoformat())
        self.settings = base.replace(rate=rate, **overrides)
        self.sim_start = pd.Timestamp(self.settings.sim_start)
        self.dsn = dsn
        self.duration = float(duration)
        self.hub = Hub()
        self.live = LiveView(notify=None, table=OneWayTable)
        self.stats: PipelineStats | None = None
        self.error: BaseException | None = None
        self.seq = 0
        self.pulls = 0
        self._feed: Feed | None = None
        self._thread: threading.Thread | None = None
        self._pipeline = None
        self._callback = None
        self._seconds = None

    @property
    def view(self):
        """The live page (Panel layout)."""
        return self.live.panel

    @property
    def seconds(self):
        """The hub's per-second aggregates (columns :data:`SECOND_COLUMNS`) as an
        ``hv.streams.Buffer`` keeping the newest :data:`SECONDS` rows; fed by :meth:`pull`."""
        if self._seconds is None:
            import holoviews as hv

            empty = seconds_frame([])
            self._seconds = hv.streams.Buffer(empty, length=SECONDS, index=False)
        return self._seconds

    def trend(self, y: str = "mean_score", **opts: Any):
        """A live HoloViews curve of one column of :attr:`seconds` (``mean_score``,
        ``rows``, ``high``...) against time."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # registers Bokeh plot options, also outside a notebook
        from bokeh.models import DatetimeTickFormatter

        style = {
            "xlabel": "time",
            "responsive": True,
            "height": 260,
            "title": f"{y} per second",
            "framewise": True,
            **opts,
        }

        def curve(data: pd.DataFrame):
            # A new formatter each time: a Bokeh model belongs to one document only.
            return hv.Curve(data, "t", y).opts(xformatter=DatetimeTickFormatter(), **style)

        return hv.DynamicMap(curve, streams=[self.seconds])

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LiveRun:
        """Start the feed and the pipeline thread; returns self."""
        self._feed = Feed(self.hub, self.dsn).start()
        self._feed.connected.wait(10.0)
        self._pipeline = build_pipeline(
            self.settings, self.dsn, source="simulator", rate=self.settings.rate
        )
        self._thread = threading.Thread(target=self._work, name="notebook-pipeline", daemon=True)
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            self.stats = asyncio.run(run_with_status(self._pipeline, duration=self.duration))
        except BaseException as exc:  # shown by wait(); the kernel must not lose a thread
            self.error = exc
            log.exception("notebook pipeline failed")

    def pull(self) -> bool:
        """Apply what the hub has that the view has not; whether anything changed."""
        delta = self.hub.delta(self.seq)
        if delta.seq == self.seq:
            return False
        first, self.seq = self.seq == 0, delta.seq
        # The tables take new rows at most once a second (the view's own limit), not a whole
        # new table every pull; they are OneWayTables, which send nothing back (see there).
        self.live.update(delta, first=first)
        if delta.seconds and self._seconds is not None:
            self._seconds.send(seconds_frame(delta.seconds))
        self.pulls += 1
        return True

    def follow(self, period_ms: int = 500) -> LiveRun:
        """Pull from a Panel periodic callback until the run ends, leaving the kernel free
        (notebook front ends); returns self. A failing pull is logged, never raised into the
        kernel's event loop, and the next one tries again."""

        if self._callback is None:
            timeout = int((self.duration + 5.0) * 1000)
            self._callback = pn.state.add_periodic_callback(
                self._safe_pull, period=period_ms, timeout=timeout
            )
        return self

    def _safe_pull(self) -> None:
        try:
            if not self.pull():
                self.live.flush_tables()  # rows held back by the once-a-second limit
        except Exception:
            log.exception("live view update failed")

    def wait(self, every_s: float = 0.5, settle_s: float = 1.5) -> PipelineStats:
        """Pull every ``every_s`` until the pipeline ends, then once more after ``settle_s``
        (the last summaries), stop the feed and return the pipeline's figures."""
        if self._thread is None:
            raise RuntimeError("start() the run first")
        while self._thread.is_alive():
            self._thread.join(every_s)
            self.pull()
        time.sleep(settle_s)
        self.pull()
        self.stop()
        if self.error is not None:
            raise self.error
        assert self.stats is not None
        return self.stats

    def stop(self) -> None:
        """Stop everything now (idempotent)."""
        if self._pipeline is not None and self.running:
            self._pipeline.stop()
        if self._thread is not None:
            self._thread.join(30.0)
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        if self._feed is not None:
            self._feed.stop()
            self._feed = None
