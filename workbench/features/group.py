"""The window state and features of one ``by`` column (all specs sharing it share the work).

The specs are planned into a few *windows* — distinct (width, label delay) pairs — plus the
``of`` columns whose values ``distinct``/``is_new`` look at. One compiled pass per batch
(:func:`passes.step`) answers every row's windows from running aggregates and moves them on;
this module turns those raw aggregates into feature values (mean, std, rates, distances).

Rows older than the longest horizon of the group's specs plus the allowed lateness are
*evicted* (:func:`passes.evict`), except, for the previous-transaction features, each entity's
last row before the lateness floor (for up to ``PREVIOUS_LOOKBACK_S``). Eviction follows a
queue of what arrived, so its cost per batch is about that of the rows the batch brought, not
of the state held; a caller with idle time between batches can defer it
(``commit(..., defer=True)``) and run it with :meth:`Group.maintain`, which also grows the
arrays ahead of need; values never depend on when either runs. Eviction deferred for more than
``MAX_DEFERRED`` batches is done anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.features import passes as P
from workbench.features.kernels import haversine_km, mix64
from workbench.features.spec import LABEL_AWARE, MAX_WINDOW_S, PREVIOUS, FeatureSpec
from workbench.features.window_state import WindowState

PREVIOUS_LOOKBACK_S = MAX_WINDOW_S
"""Previous-transaction features look back at most this far (90 days); older means none."""

MAX_DEFERRED = 4  # batches an eviction may wait for maintain() before compute does it

_NS = 1_000_000_000
_I64 = np.int64


@dataclass
class BatchArrays:
    """A batch as the arrays the engine needs (rows in input order)."""

    n: int
    ts: np.ndarray  # int64 ns
    hashes: dict[str, np.ndarray]  # column -> uint64 hash of its value
    known: dict[str, np.ndarray]  # column -> value is not missing
    cols: dict[str, np.ndarray]  # cents (int64), label (int8: -1 unknown), amount, lat, lon
    sorted: bool = False  # ts never decreases along the batch (the usual case)


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


@dataclass
class Plan:
    """What the compiled passes maintain for a group's specs."""

    win_w: np.ndarray  # window widths (ns)
    win_d: np.ndarray  # label delays (ns; 0: ts < t)
    win_ext: np.ndarray  # the window needs max/min
    columns: list[str]  # ``of`` columns of distinct/is_new
    dist_comp: np.ndarray  # per distinct feature: column index
    dist_win: np.ndarray  # per distinct feature: window index
    retention_ns: int
    lateness_ns: int
    lookback_ns: int
    has_previous: bool


def plan(specs: list[FeatureSpec], lateness_s: float) -> tuple[Plan, dict[str, tuple]]:
    """The windows and columns the specs need, and where each spec's value comes from."""
    windows: list[tuple[int, int]] = []
    ext: set[int] = set()
    columns = sorted({s.of for s in specs if s.agg in ("distinct", "is_new")})
    distinct: list[tuple[int, int]] = []
    where: dict[str, tuple] = {}

    def window(w: int, d: int = 0) -> int:
        if (w, d) not in windows:
            windows.append((w, d))
        return windows.index((w, d))

    for s in specs:
        w = _ns(s.window_s) if s.window_s else 0
        if s.agg in PREVIOUS:
            where[s.name] = ("previous",)
        elif s.agg == "is_new":
            where[s.name] = ("is_new", columns.index(s.of), w)
        elif s.agg in LABEL_AWARE:
            where[s.name] = ("window", window(w, _ns(s.label_delay_s)))
        elif s.agg == "distinct":
            pair = (columns.index(s.of), window(w))
            if pair not in distinct:
                distinct.append(pair)
            where[s.name] = ("distinct", distinct.index(pair))
        else:
            k = window(w)
            if s.agg in ("max", "min"):
                ext.add(k)
            where[s.name] = ("window", k)
    lateness_ns = _ns(lateness_s)
    return (
        Plan(
            win_w=np.array([w for w, _ in windows], dtype=_I64),
            win_d=np.array([d for _, d in windows], dtype=_I64),
            win_ext=np.array([k in ext for k in range(len(windows))], dtype=np.bool_),
            columns=columns,
            dist_comp=np.array([c for c, _ in distinct], dtype=_I64),
            dist_win=np.array([k for _, k in distinct], dtype=_I64),
            retention_ns=_ns(max(s.horizon_s for s in specs)) + lateness_ns,
            lateness_ns=lateness_ns,
            lookback_ns=_ns(PREVIOUS_LOOKBACK_S),
            has_previous=any(s.agg in PREVIOUS for s in specs),
        ),
        where,
    )


class Group:
    """Window state and feature computation for the specs of one ``by`` column."""

    def __init__(self, by: str, specs: list[FeatureSpec], lateness_s: float):
        self.by = by
        self.specs = specs
        self.plan, self.where = plan(specs, lateness_s)
        self.reset()

    def reset(self) -> None:
        p = self.plan
        self.state = WindowState(len(p.win_w), len(p.columns), len(p.dist_win))
        self.evicted = 0  # rows dropped so far
        self.deferred = 0  # batches committed since the last eviction
        self.newest_ns: int | None = None
        self.last_rows = 0  # rows of the last batch with this entity

    @property
    def rows(self) -> int:
        return self.state.rows

    def compute(self, b: BatchArrays, commit: bool = True) -> dict[str, np.ndarray]:
        """Feature values (input order) of the batch; with ``commit`` the batch's rows are
        added to the state, otherwise a copy of the state is used."""
        rows = np.flatnonzero(b.known[self.by])
        out = {s.name: _missing(s, b.n) for s in self.specs}
        if len(rows) == 0:
            return out
        p, n = self.plan, len(rows)
        if commit:
            self.last_rows = n
        state = self.state if commit else self.state.copy()
        state.ensure(n)
        h = b.hashes[self.by][rows]
        ts = b.ts[rows]
        cents = b.cols["cents"][rows] if "cents" in b.cols else np.zeros(n, dtype=_I64)
        label = b.cols["label"][rows].astype(_I64) if "label" in b.cols else np.full(n, -1, _I64)
        fl = np.full((n, 3), np.nan)
        for f, name in enumerate(("amount", "lat", "lon")):
            if name in b.cols:
                fl[:, f] = b.cols[name][rows]
        nc, nw, nd = len(p.columns), len(p.win_w), len(p.dist_win)
        vkey = np.empty((nc, n), dtype=_I64)
        vknown = np.empty((nc, n), dtype=np.bool_)
        for c, of in enumerate(p.columns):
            # one hash table serves every column: the column is part of the key
            vkey[c] = mix64(h + np.uint64(c), b.hashes[of][rows]).view(_I64)
            vknown[c] = b.known[of][rows]
        o_agg = np.empty((n, nw, P.A_FIELDS), dtype=_I64)
        o_ext = np.empty((n, nw, 2))
        o_dist = np.empty((n, nd), dtype=_I64)
        o_vlast = np.empty((n, nc), dtype=_I64)
        o_pts = np.empty(n, dtype=_I64)
        o_prev = np.empty((n, 2))
        P.step(
            np.arange(n) if b.sorted else np.argsort(ts, kind="stable"),
            h.view(_I64),
            ts,
            cents,
            label,
            fl,
            vkey,
            vknown,
            p.win_w,
            p.win_d,
            p.win_ext,
            p.dist_comp,
            p.dist_win,
            state.etab,
            state.ent,
            state.row,
            state.row.view(np.float64),
            state.vtab,
            state.vrec,
            state.mark,
            state.meta,
            state.queue,
            p.retention_ns,
            o_agg,
            o_ext,
            o_dist,
            o_vlast,
            o_pts,
            o_prev,
        )
        raw = _Raw(ts, fl, vknown, o_agg, o_ext, o_dist, o_vlast, (o_pts, o_prev), p.lookback_ns)
        for s in self.specs:
            out[s.name][rows] = raw.value(s, self.where[s.name])
        return out

    def commit(self, newest_ns: int, defer: bool = False) -> None:
        """After a committed batch: evict what the batch made droppable; with ``defer``
        leave that to :meth:`maintain` (for ``MAX_DEFERRED`` batches at most)."""
        self.newest_ns = newest_ns
        self.deferred += 1
        if not defer or self.deferred > MAX_DEFERRED:
            self.evict()

    @property
    def due(self) -> bool:
        """Eviction is pending (deferred by :meth:`commit`)."""
        due = self.state.next_due()
        return self.newest_ns is not None and due is not None and due < self.newest_ns

    def maintain(self) -> bool:
        """Do a pending eviction (if any), then make room for two more batches like the
        last one, so that growing the arrays happens here rather than while a batch is
        scored, and prepare the arrays' successors a slice further; True if an eviction
        was due."""
        done = self.due
        if done:
            self.evict()
        self.state.ensure(2 * self.last_rows)
        self.state.prepare()
        return done

    def evict(self) -> None:
        """Drop rows no future in-time query can use (see module docstring)."""
        if self.newest_ns is not None:
            self.evicted += self.state.evict(self.plan, self.newest_ns)
        self.deferred = 0


class _Raw:
    """The compiled pass's raw outputs for the rows of a batch, turned into feature values."""

    def __init__(self, ts, fl, vknown, agg, ext, dist, vlast, prev, lookback_ns):
        self.ts, self.fl, self.vknown = ts, fl, vknown
        self.agg, self.ext, self.dist, self.vlast, self.prev = agg, ext, dist, vlast, prev
        self.lookback_ns = lookback_ns
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def value(self, s: FeatureSpec, where: tuple) -> np.ndarray:
        kind = where[0]
        if kind == "previous":
            return self.previous(s.agg)
        if kind == "is_new":
            _, c, w = where
            return self.vknown[c] & (self.vlast[:, c] < self.ts - w)
        if kind == "distinct":
            return self.dist[:, where[1]]
        a = self.agg[:, where[1]]
        n = a[:, P.A_CNT]
        with np.errstate(invalid="ignore", divide="ignore"):
            if s.agg == "count":
                return n.astype(np.float64)
            if s.agg == "sum":
                return a[:, P.A_S1] / 100.0
            if s.agg == "mean":
                return np.where(n > 0, a[:, P.A_S1] / n / 100.0, np.nan)
            if s.agg == "std":
                return _std(a, n)
            if s.agg in ("max", "min"):
                return self.ext[:, where[1], 0 if s.agg == "max" else 1]
            if s.agg == "fraud_count":
                return a[:, P.A_FRAUD].astype(np.float64)
            known = a[:, P.A_KNOWN]
            return np.where(known > 0, a[:, P.A_FRAUD] / known, np.nan)

    def previous(self, agg: str) -> np.ndarray:
        if self._previous is None:
            prev_ts, where = self.prev
            ok = (prev_ts != P.NO_TS) & (prev_ts >= self.ts - self.lookback_ns)
            seconds = np.where(ok, (self.ts - prev_ts) / 1e9, np.nan)
            km = haversine_km(where[:, 0], where[:, 1], self.fl[:, 1], self.fl[:, 2])
            self._previous = seconds, np.where(ok, km, np.nan)
        seconds, km = self._previous
        if agg == "seconds_since_prev":
            return seconds
        if agg == "distance_km":
            return km
        with np.errstate(invalid="ignore", divide="ignore"):
            return km / (seconds / 3600.0)


def _std(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Population std of the window's amounts from exact int64 sums of cents and of the
    three limbs of the squared cents (c = c1·2^31 + c0), combined in long double."""
    ld = np.longdouble
    s2 = (
        a[:, P.A_SQ2].astype(ld) * ld(2.0**62)
        + a[:, P.A_SQ1].astype(ld) * ld(2.0**32)
        + a[:, P.A_SQ0].astype(ld)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = a[:, P.A_S1].astype(ld) / n
        var = np.maximum(s2 / n - mean * mean, 0).astype(np.float64)
        return np.where(n > 0, np.sqrt(var) / 100.0, np.nan)


def _missing(s: FeatureSpec, n: int) -> np.ndarray:
    """Values for rows with no entity (and the dtype of the column)."""
    if s.type == "bool":
        return np.zeros(n, dtype=bool)
    return np.full(n, np.nan if s.nullable else 0.0)
