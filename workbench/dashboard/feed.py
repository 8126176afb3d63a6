"""The feed: one thread per server process that keeps the hub up to date from PostgreSQL.

It LISTENs for the pipeline's batch summaries (pushed within milliseconds of each commit),
wakes the sessions after each burst of them (:meth:`~workbench.dashboard.hub.Hub.wake`: a
commit reaches the browsers without waiting for a periodic pull). After a burst a second
thread runs a few small queries shared by every session: the newest stored transactions,
the number of open alerts and the newest rule-set load (then wakes them again if those
changed); on a thread of their own they never hold up the next notification. When the
database goes away it reports so in the hub's health, waits and reconnects; sessions keep
showing the last numbers meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time

import pandas as pd

from workbench.dashboard.hub import TRANSACTIONS, Hub
from workbench.errors import StorageError
from workbench.storage import BatchSummary, Listener, Store, shared_store

log = logging.getLogger(__name__)

POLL_S = 0.2  # longest wait for notifications before the feed looks at its stop flag
REFRESH_S = 0.5  # shortest interval between the shared queries while batches arrive
IDLE_REFRESH_S = 5.0  # and while none arrive (alerts closed by analysts, rule-set loads)
RETRY_S = (0.5, 1.0, 2.0, 5.0)


class Feed:
    """Runs in a daemon thread: ``start()`` once, ``stop()`` at shutdown."""

    def __init__(self, hub: Hub, dsn: str) -> None:
        self.hub, self.dsn = hub, dsn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-feed", daemon=True)
        self.connected = threading.Event()

    def start(self) -> Feed:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._session()
                failures = 0
            except StorageError as exc:
                self.connected.clear()
                self.hub.set_health(database=str(exc))
                log.warning("dashboard feed: %s", exc)
                self._stop.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
            except Exception as exc:  # never let the shared feed die
                self.connected.clear()
                self.hub.set_health(database=f"feed error: {exc}")
                log.exception("dashboard feed failed; restarting")
                self._stop.wait(RETRY_S[-1])

    def _session(self) -> None:
        """One connected period: LISTEN first (so nothing committed after the totals is
        missed), then the totals, then notifications until the connection is lost."""
        # LISTEN keeps a dedicated connection; every read borrows from the process's pool.
        store = shared_store(self.dsn)
        with Listener(self.dsn) as listener:
            totals = store.stats.pipeline_totals()
            self.hub.start_totals(
                totals["stored"], totals["dead"], totals["alerts_opened"], store.alerts.open_count()
            )
            self.hub.set_health(database="ok")
            self.connected.set()
            self._refresh(store)
            refresher = _Refresher(self, store).start()
            try:
                last = time.monotonic()
                dirty = False
                while not self._stop.is_set():
                    if refresher.error is not None:
                        raise refresher.error  # reconnect as if the listener had failed
                    payloads = listener.poll(POLL_S, limit=500)
                    for payload in payloads:
                        try:
                            self.hub.ingest(BatchSummary.from_payload(payload))
                        except (ValueError, TypeError) as exc:
                            log.warning("dashboard feed: unreadable summary: %s", exc)
                        dirty = True
                    if payloads:
                        self.hub.wake()
                    if dirty and time.monotonic() - last >= REFRESH_S:
                        refresher.wanted.set()
                        last, dirty = time.monotonic(), False
            finally:
                refresher.stop()

    def _refresh(self, store: Store) -> None:
        self.hub.add_transactions(store.transactions.recent(limit=TRANSACTIONS // 2))
        self.hub.set_open_alerts(store.alerts.open_count())
        workers = store.stats.workers()
        self.hub.set_health(
            worker_rows=tuple(
                (
                    r.worker,
                    r.source,
                    _partitions(r.partitions),
                    None if pd.isna(r.lag) else int(r.lag),
                    r.last_commit,
                )
                for r in workers.itertuples(index=False)
            )
        )
        last = store.rule_sets.last()
        if last is not None:
            self.hub.set_health(
                reload_status=last["status"],
                reload_version=last["version"],
                reload_error=last["error"],
                reload_at=last["created_at"],
            )


class _Refresher:
    """The shared queries of one connected period, on a thread of their own: when
    ``wanted`` is set (after a burst of batches) and every :data:`IDLE_REFRESH_S`. An error
    is kept in ``error`` for the listening thread to raise."""

    def __init__(self, feed: Feed, store: Store) -> None:
        self.feed, self.store = feed, store
        self.wanted = threading.Event()
        self.error: Exception | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="workbench-feed-refresh", daemon=True
        )

    def start(self) -> _Refresher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self.wanted.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        hub = self.feed.hub
        while True:
            self.wanted.wait(IDLE_REFRESH_S)
            if self._done.is_set():
                return
            self.wanted.clear()
            seq = hub.seq
            try:
                self.feed._refresh(self.store)
            except Exception as exc:  # raised by the listening thread, which reconnects
                self.error = exc
                return
            if hub.seq != seq:
                hub.wake()


def _partitions(value) -> tuple[int, ...] | None:
    """A Kafka worker's partitions (a list from the database), None for other sources."""
    if isinstance(value, list | tuple):
        return tuple(int(p) for p in value)
    return None
