"""The hub: one per server process, bounded aggregates of what the pipeline reports.

The hub is fed by one thread (:class:`~workbench.dashboard.feed.Feed`) and read by every
browser session of the process. Each session keeps the sequence number it has seen and asks
for a :class:`Delta` since then, so a session that errors or disconnects leaves no state
behind. The only thing a session registers is a wake-up (:meth:`Hub.subscribe`, held weakly
and removed when the session is destroyed): the feed calls :meth:`Hub.wake` after each burst
of batch summaries, so a session pulls a commit within milliseconds instead of at its next
periodic tick. Sessions woken together ask for the same delta at the same time: it is
computed once (:meth:`Hub.delta` keeps the newest few) and so is what the pages derive from
it (:meth:`Delta.derived`: the health panel's HTML). What the pages show of each new page of
stored rows and of each batch's High rows is prepared once, by the feed's thread, when they
arrive while a session is subscribed (``prepare_rows`` / ``prepare_alerts``, given by the
server; what arrived before is prepared when a delta first needs it): a session only streams
it, and a server nobody watches prepares nothing. Every
collection here has a fixed maximum length, so the hub's memory does not grow however long
the server runs.

Everything is in wall-clock time of this process (``clock``), except transaction event times.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from workbench.bands import LABELS
from workbench.storage.notify import BatchSummary, HighRow

log = logging.getLogger(__name__)

TICKS = 3600  # per-batch records kept (latency, rates, band shares)
SECONDS = 900  # closed one-second buckets kept for the trend plots
TRANSACTIONS = 500  # newest stored transactions kept for the live table and map
ALERTS = 200  # newest High transactions kept for the alert feed
RULE_WINDOW_S = 300.0  # hit rate per rule over this many seconds
RATE_WINDOW_S = 5.0  # current tx/s over this many seconds
LATENCY_WINDOW_S = 60.0  # latency percentiles over this many seconds
SHARE_WINDOW_S = 600.0  # % High and mean score over this many seconds
DELTA_SHARED_S = 0.05  # sessions asking within this long for the same delta share one
DELTAS_KEPT = 8  # deltas kept for sharing (different ``since`` or moments)


@dataclass(frozen=True)
class Tick:
    """One committed batch, as its NOTIFY summary reported it."""

    seq: int
    at: float  # when the hub received it (epoch s)
    rows: int
    bands: Mapping[str, int]
    mean_score: float
    p95_score: float
    latency_ms: float  # batch read by the worker -> summary received here
    dead: int
    alerts_opened: int
    rule_hits: Mapping[str, int]
    rule_set_version: str | None


@dataclass(frozen=True)
class Second:
    """All batches received within one wall-clock second."""

    seq: int
    t: float  # start of the second (epoch s)
    rows: int
    low: int
    medium: int
    high: int
    mean_score: float  # row-weighted mean of the batch means
    p95_score: float  # the largest batch p95 of the second


@dataclass(frozen=True)
class Kpis:
    processed: int = 0
    tx_per_s: float = 0.0
    pct_high: float = 0.0
    open_alerts: int = 0
    mean_score: float = math.nan
    latency_p50_ms: float = math.nan
    latency_p99_ms: float = math.nan
    dead_letters: int = 0
    alerts_opened: int = 0


@dataclass(frozen=True)
class Health:
    database: str = "connecting"  # "ok" or the reason it is not
    rule_set_version: str | None = None  # the version the pipeline scores with
    reload_status: str | None = None  # newest rule-set load: accepted | rejected
    reload_version: str | None = None
    reload_error: str | None = None
    reload_at: Any = None
    # Seconds since the last summary, filled in by delta() at read time. Not compared: it is
    # not state, and NaN (no batch yet) would make every Health unequal to itself on Python
    # >= 3.13, whose dataclass __eq__ compares field by field (nan != nan) instead of tuples.
    last_batch_age_s: float = field(default=math.nan, compare=False)
    workers: tuple[str, ...] = ()
    # Each recently committing worker: (worker, source, partitions, lag, last commit), as
    # read by the feed from pipeline_stats (workbench.storage.stats.workers).
    worker_rows: tuple[tuple[Any, ...], ...] = ()


@dataclass(frozen=True)
class Delta:
    """What a session needs to catch up from ``since`` to ``seq``.

    ``seconds``, ``transactions`` (oldest first) and ``alerts`` (oldest first) hold only what
    is newer than ``since`` and still kept; the rest are snapshots of the current state.
    """

    seq: int
    kpis: Kpis
    health: Health
    seconds: list[Second]
    transactions: pd.DataFrame
    alerts: list[HighRow]
    bands: dict[str, int]  # rows per band over SHARE_WINDOW_S
    rule_rates: dict[str, float]  # hits per minute over RULE_WINDOW_S, largest first
    # ``prepare_rows(page)`` of each page of ``transactions``, ``prepare_alerts(rows)`` of
    # each batch's ``alerts``, oldest first (empty without those hooks)
    rows_prepared: list[Any] = field(default_factory=list)
    alerts_prepared: list[Any] = field(default_factory=list)
    _derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def derived(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per delta and ``key``: every session given this delta
        (sessions woken together share one) reuses it. Only the event loop's thread calls it."""
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = make()
            return value


@dataclass
class _Open:
    t: float
    rows: int = 0
    bands: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    score_sum: float = 0.0
    p95: float = math.nan


class Hub:
    """Bounded, thread-safe aggregates of batch summaries and recent rows.

    ``prepare_rows(page)`` (a page of new stored rows, oldest first) and
    ``prepare_alerts(rows)`` (a batch's High rows, oldest first), when given, are called once
    per page or batch on the feed's thread while a session is subscribed (else when a delta
    first needs them); their results reach the sessions in :attr:`Delta.rows_prepared` and
    :attr:`Delta.alerts_prepared`."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        prepare_rows: Callable[[pd.DataFrame], Any] | None = None,
        prepare_alerts: Callable[[list[HighRow]], Any] | None = None,
    ) -> None:
        self._clock = clock
        self._prepare_rows = prepare_rows
        self._prepare_alerts = prepare_alerts
        self._lock = threading.Lock()
        self._seq = 0
        self._ticks: deque[Tick] = deque(maxlen=TICKS)
        self._seconds: deque[Second] = deque(maxlen=SECONDS)
        self._open: _Open | None = None
        self._tx: deque[tuple[int, pd.DataFrame, Any]] = deque()  # (seq, page, prepared)
        self._tx_rows = 0
        self._tx_seen: deque[str] = deque(maxlen=4 * TRANSACTIONS)
        self._tx_seen_set: set[str] = set()
        self._alerts: deque[tuple[int, HighRow]] = deque(maxlen=ALERTS)
        self._alerts_prepared: deque[tuple[int, Any]] = deque(maxlen=ALERTS)
        self._processed = 0
        self._dead = 0
        self._alerts_opened = 0
        self._open_alerts = 0
        self._health = Health()
        self._workers: deque[str] = deque(maxlen=16)
        self._deltas: OrderedDict[tuple[int, int, int], Delta] = OrderedDict()
        self._woken: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- wake-ups (sessions subscribe; the feed wakes them) ------------------------------

    def subscribe(self, session: Any) -> None:
        """Call ``session.wake()`` (from the feed's thread: it must only schedule work) at
        every :meth:`wake`. Held weakly; :meth:`unsubscribe` when the session ends."""
        with self._lock:
            self._woken.add(session)

    def unsubscribe(self, session: Any) -> None:
        with self._lock:
            self._woken.discard(session)

    def wake(self) -> None:
        """Tell every subscribed session that the hub changed (the feed, after a burst)."""
        with self._lock:
            sessions = list(self._woken)
        for session in sessions:
            try:
                session.wake()
            except Exception:  # a broken session must not stop the feed
                log.exception("waking a dashboard session failed")

    # -- writers (the feed thread) ------------------------------------------------------

    def start_totals(self, stored: int, dead: int, alerts_opened: int, open_alerts: int) -> None:
        """Totals from the database when the feed (re)connects: what happened before."""
        with self._lock:
            self._processed, self._dead = int(stored), int(dead)
            self._alerts_opened, self._open_alerts = int(alerts_opened), int(open_alerts)
            self._seq += 1

    def ingest(self, summary: BatchSummary) -> None:
        """One batch summary (from a NOTIFY payload: :meth:`BatchSummary.from_payload`)."""
        now = self._clock()
        latency = (now - summary.created_at) * 1000.0 if summary.created_at else math.nan
        high = list(reversed(summary.high))  # payload is newest first
        watched = bool(self._woken)  # nobody subscribed: prepared only if a delta needs it
        prepared = self._prepare_alerts(high) if high and self._prepare_alerts and watched else None
        with self._lock:
            self._seq += 1
            tick = Tick(
                seq=self._seq,
                at=now,
                rows=summary.rows,
                bands={b: summary.band(b) for b in LABELS},
                mean_score=_float(summary.mean_score),
                p95_score=_float(summary.p95_score),
                latency_ms=latency,
                dead=summary.dead,
                alerts_opened=summary.alerts_opened,
                rule_hits=dict(summary.rule_hits),
                rule_set_version=summary.rule_set_version,
            )
            self._ticks.append(tick)
            self._add_to_second(tick)
            self._processed += tick.rows
            self._dead += tick.dead
            self._alerts_opened += tick.alerts_opened
            self._open_alerts += tick.alerts_opened
            if summary.worker and summary.worker not in self._workers:
                self._workers.append(summary.worker)
            if tick.rule_set_version:
                self._health = replace(self._health, rule_set_version=tick.rule_set_version)
            for row in high:
                self._alerts.append((self._seq, row))
            if prepared is not None:
                self._alerts_prepared.append((self._seq, prepared))

    def add_transactions(self, frame: pd.DataFrame) -> None:
        """Newest stored rows (any order); rows already seen (by ``tx_id``) are skipped."""
        if frame.empty:
            return
        seen = self._tx_seen_set  # a page of rows: a set lookup each beats Series.isin here
        fresh = frame[[tx_id not in seen for tx_id in frame["tx_id"].tolist()]]
        if fresh.empty:
            return
        fresh = fresh.sort_values(["ts", "tx_id"]).tail(TRANSACTIONS).reset_index(drop=True)
        prepared = self._prepare_rows(fresh) if self._prepare_rows and self._woken else None
        with self._lock:
            self._seq += 1
            self._tx.append((self._seq, fresh, prepared))
            self._tx_rows += len(fresh)
            while self._tx_rows - len(self._tx[0][1]) >= TRANSACTIONS:
                self._tx_rows -= len(self._tx.popleft()[1])
            for tx_id in fresh["tx_id"]:
                if len(self._tx_seen) == self._tx_seen.maxlen:
                    self._tx_seen_set.discard(self._tx_seen[0])
                self._tx_seen.append(tx_id)
                self._tx_seen_set.add(tx_id)

    def set_open_alerts(self, count: int) -> None:
        with self._lock:
            if count != self._open_alerts:
                self._open_alerts = int(count)
                self._seq += 1

    def set_health(self, **changes: Any) -> None:
        """Change fields of :class:`Health` (database, reload_*)."""
        with self._lock:
            updated = replace(self._health, **changes)
            if updated != self._health:
                self._health = updated
                self._seq += 1

    # -- readers (browser sessions) -----------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    def delta(self, since: int = 0) -> Delta:
        """Everything a session that has seen up to ``since`` needs (0: a new session).

        The same object for every call with the same ``since`` and hub state within
        :data:`DELTA_SHARED_S` (treat it as read-only)."""
        now = self._clock()
        with self._lock:
            self._close_second(now)
            key = (since, self._seq, math.floor(now / DELTA_SHARED_S))
            shared = self._deltas.get(key)
            if shared is not None:
                return shared
            delta = self._delta(since, now)
            self._deltas[key] = delta
            while len(self._deltas) > DELTAS_KEPT:
                self._deltas.popitem(last=False)
            return delta

    def _delta(self, since: int, now: float) -> Delta:
        """A new :class:`Delta` (lock held: computed once for every session sharing it)."""
        ticks = list(self._ticks)
        pages = [(f, prepared) for seq, f, prepared in self._tx if seq > since]
        chunks = [f for f, _ in pages]
        transactions = (
            pd.concat(chunks, ignore_index=True).tail(TRANSACTIONS).reset_index(drop=True)
            if chunks
            else pd.DataFrame()
        )
        alerts = [a for seq, a in self._alerts if seq > since]
        return Delta(
            seq=self._seq,
            kpis=_kpis(
                ticks, now, self._processed, self._dead, self._alerts_opened, self._open_alerts
            ),
            health=replace(
                self._health,
                last_batch_age_s=now - ticks[-1].at if ticks else math.nan,
                workers=tuple(self._workers),
            ),
            seconds=[s for s in self._seconds if s.seq > since],
            transactions=transactions,
            alerts=alerts[-ALERTS:],
            bands=_bands(ticks, now),
            rule_rates=_rule_rates(ticks, now),
            rows_prepared=self._rows_prepared(pages),
            alerts_prepared=self._alerts_since(since),
        )

    def _rows_prepared(self, pages: list[tuple[pd.DataFrame, Any]]) -> list[Any]:
        if self._prepare_rows is None:
            return []
        prepare = self._prepare_rows
        return [prepared if prepared is not None else prepare(f) for f, prepared in pages]

    def _alerts_since(self, since: int) -> list[Any]:
        """``prepare_alerts`` of each batch's High rows newer than ``since``, oldest first."""
        if self._prepare_alerts is None:
            return []
        done = {seq: prepared for seq, prepared in self._alerts_prepared if seq > since}
        batches: dict[int, list[HighRow]] = {}
        for seq, row in self._alerts:
            if seq > since:
                batches.setdefault(seq, []).append(row)
        prepare = self._prepare_alerts
        return [done[seq] if seq in done else prepare(rows) for seq, rows in batches.items()]

    # -- internals (lock held) ----------------------------------------------------------

    def _add_to_second(self, tick: Tick) -> None:
        start = math.floor(tick.at)
        self._close_second(start)
        if self._open is None:
            self._open = _Open(t=start)
        o = self._open
        o.rows += tick.rows
        for band, n in tick.bands.items():
            o.bands[band] = o.bands.get(band, 0) + n
        if tick.rows and not math.isnan(tick.mean_score):
            o.score_sum += tick.mean_score * tick.rows
        if not math.isnan(tick.p95_score):
            o.p95 = tick.p95_score if math.isnan(o.p95) else max(o.p95, tick.p95_score)

    def _close_second(self, now: float) -> None:
        """Publish the open second once ``now`` is past it."""
        o = self._open
        if o is None or now < o.t + 1.0:
            return
        self._seq += 1
        self._seconds.append(
            Second(
                seq=self._seq,
                t=o.t,
                rows=o.rows,
                low=o.bands.get("Low", 0),
                medium=o.bands.get("Medium", 0),
                high=o.bands.get("High", 0),
                mean_score=o.score_sum / o.rows if o.rows else math.nan,
                p95_score=o.p95,
            )
        )
        self._open = None


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _recent(ticks: list[Tick], now: float, window_s: float) -> list[Tick]:
    return [t for t in ticks if t.at > now - window_s]


def _kpis(
    ticks: list[Tick], now: float, processed: int, dead: int, opened: int, open_alerts: int
) -> Kpis:
    rate = sum(t.rows for t in _recent(ticks, now, RATE_WINDOW_S)) / RATE_WINDOW_S
    share = _recent(ticks, now, SHARE_WINDOW_S)
    rows = sum(t.rows for t in share)
    high = sum(t.bands.get("High", 0) for t in share)
    scored = [(t.mean_score, t.rows) for t in share if t.rows and not math.isnan(t.mean_score)]
    weight = sum(n for _, n in scored)
    latencies = np.array(
        [t.latency_ms for t in _recent(ticks, now, LATENCY_WINDOW_S)], dtype=np.float64
    )
    latencies = latencies[~np.isnan(latencies)]
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies.size else (math.nan, math.nan)
    return Kpis(
        processed=processed,
        tx_per_s=rate,
        pct_high=100.0 * high / rows if rows else 0.0,
        open_alerts=open_alerts,
        mean_score=sum(m * n for m, n in scored) / weight if weight else math.nan,
        latency_p50_ms=float(p50),
        latency_p99_ms=float(p99),
        dead_letters=dead,
        alerts_opened=opened,
    )


def _bands(ticks: list[Tick], now: float) -> dict[str, int]:
    out = dict.fromkeys(LABELS, 0)
    for t in _recent(ticks, now, SHARE_WINDOW_S):
        for band, n in t.bands.items():
            out[band] = out.get(band, 0) + n
    return out


def _rule_rates(ticks: list[Tick], now: float) -> dict[str, float]:
    recent = _recent(ticks, now, RULE_WINDOW_S)
    if not recent:
        return {}
    span_min = max(now - recent[0].at, 1.0) / 60.0
    counts: dict[str, int] = {}
    for t in recent:
        for rule, n in t.rule_hits.items():
            counts[rule] = counts.get(rule, 0) + n
    return {r: n / span_min for r, n in sorted(counts.items(), key=lambda kv: -kv[1])}
