"""The window state and features of one ``by`` column (all specs sharing it share the work).

The specs are planned into a few *windows* — distinct (reach, delay, condition) triples: a
window of width W ending E (``ending``) reaches W + E back and admits rows E old (a fraud
feature's label delay D: max(D, E)); a ``where`` condition is a bit of each stored row — plus
the
``of`` columns whose values ``distinct``/``is_new`` look at. One compiled pass per batch
(:func:`passes.step`) answers every row's windows from running aggregates and moves them on;
one more (:func:`outputs.finish`, run by a small per-spec program this module builds) turns
those raw aggregates into feature values (mean, std, rates, distances).

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

from workbench.features import outputs as O
from workbench.features import passes as P
from workbench.features.kernels import mix64
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
    cols: dict[str, np.ndarray]  # cents (int64), label (int64: -1 unknown), fl (amount, lat,
    # lon), cond (int64: bit i set when the row meets the rule set's condition i)
    sorted: bool = False  # ts never decreases along the batch (the usual case)


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


@dataclass
class Plan:
    """What the compiled passes maintain for a group's specs."""

    win_w: np.ndarray  # window widths (ns)
    win_d: np.ndarray  # label delays (ns; 0: ts < t)
    win_ext: np.ndarray  # the window needs max/min
    win_cond: np.ndarray  # the window's condition bit (-1: none)
    win_sorted: np.ndarray  # the window's slot of sorted amounts (max/min, percentiles; -1: none)
    pct_win: np.ndarray  # per percentile feature: window index
    pct_q: np.ndarray  # per percentile feature: quantile (0..1)
    columns: list[str]  # ``of`` columns of distinct/is_new
    dist_comp: np.ndarray  # per distinct feature: column index
    dist_win: np.ndarray  # per distinct feature: window index
    retention_ns: int
    lateness_ns: int
    lookback_ns: int
    has_previous: bool
    lay: np.ndarray  # the stored rows' layout (:func:`passes.row_layout`)


def plan(
    specs: list[FeatureSpec], lateness_s: float, bits: dict[str, int] | None = None
) -> tuple[Plan, dict[str, tuple]]:
    """The windows and columns the specs need, and where each spec's value comes from
    (``bits``: the condition bit of each ``where`` text)."""
    bits = bits or {}
    windows: list[tuple[int, int, int]] = []
    pct: list[tuple[int, float]] = []
    ext: set[int] = set()
    columns = sorted({s.of for s in specs if s.agg in ("distinct", "is_new")})
    distinct: list[tuple[int, int]] = []
    where: dict[str, tuple] = {}

    def window(s: FeatureSpec) -> int:
        delay = max(s.label_delay_s, s.ending_s) if s.agg in LABEL_AWARE else s.ending_s
        key = (_ns(s.window_s + s.ending_s), _ns(delay), bits[s.where] if s.where else -1)
        if key not in windows:
            windows.append(key)
        return windows.index(key)

    for s in specs:
        if s.agg in PREVIOUS:
            where[s.name] = ("previous",)
        elif s.agg == "is_new":
            where[s.name] = ("is_new", columns.index(s.of), _ns(s.window_s))
        elif s.agg == "distinct":
            pair = (columns.index(s.of), window(s))
            if pair not in distinct:
                distinct.append(pair)
            where[s.name] = ("distinct", distinct.index(pair))
        elif s.q is not None:
            pair = (window(s), s.q)
            if pair not in pct:
                pct.append(pair)
            where[s.name] = ("percentile", pct.index(pair))
        else:
            k = window(s)
            if s.agg in ("max", "min"):
                ext.add(k)
            where[s.name] = ("window", k)
    lateness_ns = _ns(lateness_s)
    ordered = sorted(ext | {k for k, _ in pct})
    lay = P.row_layout(
        len(columns),
        label=any(s.agg in ("fraud_count", "fraud_rate") for s in specs),
        cond=any(c >= 0 for _, _, c in windows),
        amount=bool(ordered),
        geo=any(s.agg in ("distance_km", "speed_kmh") for s in specs),
    )
    return (
        Plan(
            win_w=np.array([w for w, _, _ in windows], dtype=_I64),
            win_d=np.array([d for _, d, _ in windows], dtype=_I64),
            win_ext=np.array([k in ext for k in range(len(windows))], dtype=np.bool_),
            win_cond=np.array([c for _, _, c in windows], dtype=_I64),
            win_sorted=np.array(
                [ordered.index(k) if k in ordered else -1 for k in range(len(windows))], dtype=_I64
            ),
            pct_win=np.array([k for k, _ in pct], dtype=_I64),
            pct_q=np.array([q for _, q in pct], dtype=np.float64),
            columns=columns,
            dist_comp=np.array([c for c, _ in distinct], dtype=_I64),
            dist_win=np.array([k for _, k in distinct], dtype=_I64),
            retention_ns=_ns(max(s.horizon_s for s in specs)) + lateness_ns,
            lateness_ns=lateness_ns,
            lookback_ns=_ns(PREVIOUS_LOOKBACK_S),
            has_previous=any(s.agg in PREVIOUS for s in specs),
            lay=lay,
        ),
        where,
    )


def program(specs: list[FeatureSpec], where: dict[str, tuple], slots: list[int]) -> np.ndarray:
    """The :func:`outputs.finish` program of the specs: (code, argument, width, output row)."""
    lines = []
    for s, slot in zip(specs, slots, strict=True):
        w = where[s.name]
        arg = w[1] if len(w) > 1 else 0
        width = w[2] if w[0] == "is_new" else 0
        lines.append((O.CODES[s.agg], arg, width, slot))
    return np.array(lines, dtype=_I64).reshape(len(lines), O.PROGRAM_FIELDS)


class Group:
    """Window state and feature computation for the specs of one ``by`` column."""

    def __init__(
        self,
        by: str,
        specs: list[FeatureSpec],
        lateness_s: float,
        slots: list[int],
        bits: dict[str, int] | None = None,
    ):
        """``slots``: per spec, its row in the engine's float or bool output matrix;
        ``bits``: the condition bit of each ``where`` text."""
        self.by = by
        self.specs = specs
        self.plan, where = plan(specs, lateness_s, bits)
        self.program = program(specs, where, slots)
        self._buf = np.empty(64)  # scratch of the pass: a late row's window amounts
        self.reset()

    def reset(self) -> None:
        p = self.plan
        self.state = WindowState(
            len(p.win_w),
            len(p.columns),
            len(p.dist_win),
            int((p.win_sorted >= 0).sum()),
            row_fields=P.row_width(p.lay),
        )
        self.evicted = 0  # rows dropped so far
        self.deferred = 0  # batches committed since the last eviction
        self.newest_ns: int | None = None
        self.last_rows = 0  # rows of the last batch with this entity

    @property
    def rows(self) -> int:
        return self.state.rows

    @property
    def cost(self) -> int:
        """A rough cost per batch row (fields of its entity and row records): which group
        a parallel batch starts first."""
        return self.state.ent.shape[1] + self.state.row.shape[1]

    def compute(
        self, b: BatchArrays, fout: np.ndarray, bout: np.ndarray, commit: bool = True
    ) -> None:
        """Write the batch's feature values into ``fout``/``bout`` (the rows :meth:`program`
        names, a column per batch row); with ``commit`` the batch's rows are added to the
        state, otherwise a copy of the state is used."""
        known = b.known[self.by]
        everyone = bool(known.all())
        if not everyone:
            for s, line in zip(self.specs, self.program, strict=True):
                if s.type == "bool":
                    bout[line[3]] = False
                else:
                    fout[line[3]] = np.nan if s.nullable else 0.0
        rows = np.arange(b.n) if everyone else np.flatnonzero(known)
        if len(rows) == 0:
            return
        p, n = self.plan, len(rows)
        if commit:
            self.last_rows = n
        state = self.state if commit else self.state.copy()
        state.ensure(n)

        def take(a: np.ndarray) -> np.ndarray:
            return a if everyone else a[rows]

        h = take(b.hashes[self.by])
        ts = take(b.ts)
        fl = take(b.cols["fl"])
        nc, nw, nd = len(p.columns), len(p.win_w), len(p.dist_win)
        vkey = np.empty((nc, n), dtype=_I64)
        vknown = np.empty((nc, n), dtype=np.bool_)
        for c, of in enumerate(p.columns):
            # one hash table serves every column: the column is part of the key
            vkey[c] = mix64(h + np.uint64(c), take(b.hashes[of])).view(_I64)
            vknown[c] = take(b.known[of])
        o_agg = np.empty((n, nw, P.A_FIELDS), dtype=_I64)
        o_ext = np.empty((n, nw, 2))
        o_dist = np.empty((n, nd), dtype=_I64)
        o_vlast = np.empty((n, nc), dtype=_I64)
        o_pts = np.empty(n, dtype=_I64)
        o_prev = np.empty((n, 2))
        o_pct = np.empty((n, len(p.pct_win)))
        order = np.arange(n) if b.sorted else np.argsort(ts, kind="stable")
        start, resume = 0, -1
        while start < n:  # the pass stops when the pool of sorted amounts lacks room
            start, resume, need = self._step(
                state, order, h, ts, fl, vkey, vknown, b, take, o_agg, o_ext, o_dist, o_vlast,
                o_pts, o_prev, o_pct, start, resume,
            )  # fmt: skip
            if start < n and need > 0:
                state.grow_pool(need)
            elif start < n:  # a late row's percentiles gather more amounts than it holds
                self._buf = np.empty(max(-need, 2 * len(self._buf)))
        O.finish(
            self.program, rows, ts, fl, vknown, o_agg, o_ext, o_dist, o_vlast, o_pts, o_prev,
            o_pct, p.lookback_ns, fout, bout,
        )  # fmt: skip

    def _step(
        self, state, order, h, ts, fl, vkey, vknown, b, take, o_agg, o_ext, o_dist, o_vlast,
        o_pts, o_prev, o_pct, start, resume,
    ):  # fmt: skip
        """One call of the compiled pass (:func:`passes.step`), from row ``start``."""
        p = self.plan
        return P.step(
            order,
            h.view(_I64),
            ts,
            take(b.cols["cents"]),
            take(b.cols["label"]),
            fl,
            take(b.cols["cond"]),
            vkey,
            vknown,
            p.win_w,
            p.win_d,
            p.win_ext,
            p.win_cond,
            p.win_sorted,
            p.pct_win,
            p.pct_q,
            p.dist_comp,
            p.dist_win,
            p.lay,
            state.etab,
            state.ent,
            state.row,
            state.row.view(np.float64),
            state.vtab,
            state.vrec,
            state.mark,
            state.meta,
            state.queue,
            state.pool,
            state.pool_meta,
            p.retention_ns,
            o_agg,
            o_ext,
            o_dist,
            o_vlast,
            o_pts,
            o_prev,
            o_pct,
            start,
            resume,
            self._buf,
        )

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
