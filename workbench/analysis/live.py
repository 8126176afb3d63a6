"""A small live run inside a notebook kernel: pipeline, feed, hub and the dashboard's live view.

:class:`LiveRun` starts a simulator pipeline worker in a background thread (its own asyncio
loop) for a bounded ``duration``, a :class:`~workbench.dashboard.feed.Feed` that LISTENs for
its batch summaries into a private :class:`~workbench.dashboard.hub.Hub`, and a
:class:`~workbench.dashboard.live.LiveView` (the dashboard's own live page) for the notebook.
The view changes only in :meth:`LiveRun.pull`, called either by :meth:`LiveRun.wait` (in the
foreground, until the run ends: what an executed notebook does) or by a Panel periodic
callback (:meth:`LiveRun.follow`, for an interactive kernel). Everything stops by itself.

>>> # run = LiveRun(dsn, duration=20).start(); run.view      # shows the live page
>>> # stats = run.wait()                                      # updates it until the end
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pandas as pd

from workbench.dashboard.feed import Feed
from workbench.dashboard.hub import Hub
from workbench.dashboard.live import LiveView
from workbench.pipeline.stats import PipelineStats
from workbench.pipeline.worker import build_pipeline, run_with_status
from workbench.settings import Settings

log = logging.getLogger(__name__)


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
        self.live = LiveView(notify=None)
        self.stats: PipelineStats | None = None
        self.error: BaseException | None = None
        self.seq = 0
        self.pulls = 0
        self._feed: Feed | None = None
        self._thread: threading.Thread | None = None
        self._pipeline = None
        self._callback = None

    @property
    def view(self):
        """The live page (Panel layout)."""
        return self.live.panel

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
        self.live.update(delta, first=first)
        self.live.flush_tables(force=True)
        self.pulls += 1
        return True

    def follow(self, period_ms: int = 500):
        """Pull from a Panel periodic callback until the run ends (interactive kernels)."""
        import panel as pn

        timeout = int((self.duration + 5.0) * 1000)
        self._callback = pn.state.add_periodic_callback(
            self.pull, period=period_ms, timeout=timeout
        )
        return self._callback

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
