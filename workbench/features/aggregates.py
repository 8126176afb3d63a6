"""The aggregates, each computed for all queries of a batch at once from the two levels.

Sums are exact: amounts are fixed-point int64 cents, and window sums are differences of int64
prefix sums (wrap-around cancels in the difference), so a value never depends on how the
history was split into batches. ``std`` (population, ddof=0) uses exact window sums of the
squared cents, kept as three int64 limbs (c = c1·2^31 + c0: c1², c1·c0, c0²) and combined in
long double; it is deterministic, but (as any sum-of-squares formula) accurate to ~1e-9
relative rather than exact. ``max``/``min`` compare the float amounts themselves.

Distinct counting (the only non-additive aggregate) counts, in the window W = [t - w, t),
the rows whose previous occurrence of the same (entity, value) — in the merged order of M and
R — is not in W: ``distinct = (M part) + (known rows of R in W) - (R rows whose previous
occurrence is in W) - (corrections)``:

- M part: rows of M in W whose previous M occurrence is before t - w. When W reaches the end
  of the entity's rows in M (the usual case: the query is newer than M) this equals the number
  of *last* occurrences in W, a prefix-sum difference; otherwise the rows are walked (the
  window or the tail after it, whichever is shorter).
- R rows: each R row r with previous occurrence at p (in R, or the latest M row not after it)
  lies in W with its predecessor exactly for queries of its entity with ts_r < t <= p + w: a
  contiguous run of the sorted queries, added with :func:`cover_count`.
- corrections: an R row between two M occurrences (a late or same-ts row) becomes the
  predecessor of the later M row; that M row's pair moves, again a contiguous query run.
"""

from __future__ import annotations

import numpy as np

from workbench.features.compiled import latest_before, prev_before
from workbench.features.kernels import RangeMax, cover_count, expand, haversine_km
from workbench.features.level import NO_TS, Level, lookup
from workbench.features.queries import Queries, segment, take

LATE_TS = 2**62  # "never before any window start": previous-ts of rows with no known value
_LIMBS = ("sq2", "sq1", "sq0")


def amount_columns(amount: np.ndarray) -> dict[str, np.ndarray]:
    """Fixed-point cents and the limbs of their squares."""
    cents = np.rint(np.nan_to_num(amount) * 100.0).astype(np.int64)
    c1, c0 = cents >> 31, cents & ((1 << 31) - 1)
    return {"cents": cents, "sq2": c1 * c1, "sq1": c1 * c0, "sq0": c0 * c0}


def _wsum(level: Level, col: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    p = level.prefix(col, lambda: level.cols[col])
    return p[right] - p[left]


def window_sum(q: Queries, col: str, w_ns: int) -> np.ndarray:
    """Exact int64 sum of a column over each query's window (both levels)."""
    lm, rm, lr, rr = q.window(w_ns)
    return _wsum(q.M, col, lm, rm) + _wsum(q.R, col, lr, rr)


def count(q: Queries, w_ns: int) -> np.ndarray:
    lm, rm, lr, rr = q.window(w_ns)
    return (rm - lm) + (rr - lr)


def amount_stats(q: Queries, agg: str, w_ns: int) -> np.ndarray:
    """sum / mean / std of amount over the window."""
    n = count(q, w_ns)
    s1 = window_sum(q, "cents", w_ns)
    if agg == "sum":
        return s1 / 100.0
    with np.errstate(invalid="ignore", divide="ignore"):
        if agg == "mean":
            return np.where(n > 0, s1 / n / 100.0, np.nan)
        ld = np.longdouble
        s2 = (
            window_sum(q, "sq2", w_ns).astype(ld) * ld(2.0**62)
            + window_sum(q, "sq1", w_ns).astype(ld) * ld(2.0**32)
            + window_sum(q, "sq0", w_ns).astype(ld)
        )
        mean = s1.astype(ld) / n
        var = np.maximum(s2 / n - mean * mean, 0).astype(np.float64)
        return np.where(n > 0, np.sqrt(var) / 100.0, np.nan)


def extreme(q: Queries, agg: str, w_ns: int) -> np.ndarray:
    """max / min of amount over the window (NaN when empty)."""
    sign = 1.0 if agg == "max" else -1.0
    lm, rm, lr, rr = q.window(w_ns)
    best = np.full(len(q), -np.inf)
    for level, lo, hi in ((q.M, lm, rm), (q.R, lr, rr)):
        rmq = level.derived(("rmq", agg), lambda lv=level: RangeMax(sign * lv.cols["amount"]))
        best = np.maximum(best, rmq.query(lo, hi))
    return np.where(np.isfinite(best), sign * best, np.nan)


def fraud(q: Queries, agg: str, w_ns: int, delay_ns: int) -> np.ndarray:
    """fraud_count / fraud_rate over rows with t - w <= ts <= t - delay (ts < t if delay = 0)."""

    def upper(bound):
        return bound(delay_ns, "right") if delay_ns > 0 else bound(0, "left")

    totals = []
    for flag in ("fraud", "known"):
        total = 0
        for level, bound in ((q.M, q.mb), (q.R, q.rb)):
            p = level.prefix(
                flag,
                lambda lv=level, f=flag: (
                    lv.cols["label"] == 1 if f == "fraud" else lv.cols["label"] >= 0
                ),
            )
            lo = bound(w_ns)
            total = total + p[np.maximum(upper(bound), lo)] - p[lo]
        totals.append(total)
    frauds, known = totals
    if agg == "fraud_count":
        return frauds.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known > 0, frauds / known, np.nan)


def previous(q: Queries, agg: str, lookback_ns: int) -> np.ndarray:
    """seconds_since_prev / distance_km / speed_kmh from the entity's last row with ts < t."""
    seconds, km = q.cached(("previous", lookback_ns), lambda: _previous(q, lookback_ns))
    if agg == "seconds_since_prev":
        return seconds
    if agg == "distance_km":
        return km
    with np.errstate(invalid="ignore", divide="ignore"):
        return km / (seconds / 3600.0)


def _previous(q: Queries, lookback_ns: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Seconds since the previous row and (when the group keeps coordinates) the km from
    it, shared by the previous-row features of a group."""
    in_r, row, ok = q.previous()
    prev_ts = np.where(
        in_r, take(q.R.ts, row, in_r & ok, NO_TS), take(q.M.ts, row, ~in_r & ok, NO_TS)
    )
    ok &= prev_ts >= q.t - lookback_ns
    seconds = np.where(ok, (q.t - prev_ts) / 1e9, np.nan)
    if "lat" not in q.R.cols:
        return seconds, None

    def col(name):
        return np.where(
            in_r,
            take(q.R.cols[name], row, in_r & ok, np.nan),
            take(q.M.cols[name], row, ~in_r & ok, np.nan),
        )

    here = q.R.cols
    km = haversine_km(col("lat"), col("lon"), here["lat"][q.pos], here["lon"][q.pos])
    return seconds, np.where(ok, km, np.nan)


def is_new(q: Queries, of: str, w_ns: int) -> np.ndarray:
    """True when the entity has no row with this row's value of ``of`` in the window, i.e.
    when its latest such row before t (in M or R) is older than t - w."""
    latest, known = q.cached(("latest", of), lambda: _latest_before(q, of))
    return known & (latest < q.t - w_ns)


def _latest_before(q: Queries, of: str) -> tuple[np.ndarray, np.ndarray]:
    """Per query: ts of the latest row of the same (entity, value) with ts < t, in M or R
    (NO_TS if none), and whether the query's value is known. Shared by a column's is_new."""
    R, M = q.R, q.M
    ix = R.comps[of]
    in_r = np.full(len(R), NO_TS, dtype=np.int64)
    in_r[ix.order] = prev_before(ix.code, ix.ts, NO_TS)
    # Queries with a known value in the order of R's composite index (sorted by hash), then
    # the others: searching M's index in that order walks it forwards.
    qnum = np.full(len(R), -1, dtype=np.int64)
    qnum[q.pos] = np.arange(len(q))
    sorted_q = qnum[ix.order]
    sorted_q = sorted_q[sorted_q >= 0]
    found = np.zeros(len(q), dtype=bool)
    found[sorted_q] = True
    order = np.concatenate([sorted_q, np.flatnonzero(~found)])
    chash = R.cols[f"c:{of}"][q.pos]
    mix = M.comps[of]
    code, in_m = lookup(mix.groups, chash, order)
    in_m &= found
    m_ts = latest_before(mix.starts, mix.ts, code, in_m, q.t, order, NO_TS)
    return np.maximum(in_r[q.pos], m_ts), found


def _known_flags(level: Level, of: str) -> np.ndarray:
    flags = np.zeros(len(level), dtype=np.int8)
    flags[level.comps[of].order] = 1
    return flags


def prev_ts(level: Level, of: str) -> np.ndarray:
    """Per row (main order): ts of the previous row with the same (entity, value) in this
    level, NO_TS if none, LATE_TS for rows whose value is unknown."""

    def build():
        ix = level.comps[of]
        out = np.full(len(level), LATE_TS, dtype=np.int64)
        ts = level.ts[ix.order]
        prev = np.full(len(ix), NO_TS, dtype=np.int64)
        if len(ix) > 1:
            same = ix.code[1:] == ix.code[:-1]
            prev[1:] = np.where(same, ts[:-1], NO_TS)
        out[ix.order] = prev
        return out

    return level.derived(("prev", of), build)


def _last_flags(level: Level, of: str) -> np.ndarray:
    ix = level.comps[of]
    flags = np.zeros(len(level), dtype=np.int8)
    if len(ix):
        last = np.ones(len(ix), dtype=bool)
        last[:-1] = ix.code[1:] != ix.code[:-1]
        flags[ix.order[last]] = 1
    return flags


def distinct(q: Queries, of: str, w_ns: int) -> np.ndarray:
    """Number of distinct known values of ``of`` in the window (see module docstring)."""
    M, R = q.M, q.R
    lm, rm, lr, rr = q.window(w_ns)
    a = q.t - w_ns
    # M part.
    prev_m = prev_ts(M, of)
    last = M.prefix(("last", of), lambda: _last_flags(M, of))
    end = np.where(q.mfound, M.main.starts[np.minimum(q.mcode + 1, len(M.main.groups))], 0)
    cnt = last[end] - last[lm]
    walk = np.flatnonzero(rm != end)
    if len(walk):
        inside = (rm - lm)[walk] <= (end - rm)[walk]
        sel = walk[inside]  # count rows of the window whose predecessor is before it
        owner, pos = expand(lm[sel], rm[sel])
        cnt[sel] = np.bincount(owner, weights=prev_m[pos] < a[sel][owner], minlength=len(sel))
        sel = walk[~inside]  # or: remove first occurrences that lie after the window
        owner, pos = expand(rm[sel], end[sel])
        cnt[sel] -= np.bincount(
            owner, weights=prev_m[pos] < a[sel][owner], minlength=len(sel)
        ).astype(np.int64)
    # R rows: known rows in W minus those whose predecessor is in W too.
    known = R.prefix(("known", of), lambda: _known_flags(R, of))
    cnt = cnt + known[rr] - known[lr]
    ix = R.comps[of]
    rows = ix.order
    ts = R.ts[rows]
    pe = np.maximum(prev_ts(R, of)[rows], R.cols[f"lastM:{of}"][rows])
    sel = np.flatnonzero(pe + w_ns > ts)
    lo = np.searchsorted(q.key, R.main.key[rows[sel]], "right")
    hi = np.searchsorted(q.key, R.main.code[rows[sel]] * R.span + R.tkey(pe[sel] + w_ns), "right")
    cnt -= cover_count(lo, hi, len(q))
    # Corrections: M rows whose predecessor is an R row.
    nxt = R.cols[f"nextM:{of}"][rows]
    sel = np.flatnonzero(nxt >= 0)
    if len(sel):
        c, tsr, code = nxt[sel], ts[sel], R.main.code[rows[sel]]
        o = np.lexsort((tsr, c))
        c, tsr, code = c[o], tsr[o], code[o]
        keep = np.ones(len(c), dtype=bool)
        keep[:-1] = c[1:] != c[:-1]  # latest R row before each M row
        c, tsr, code = c[keep], tsr[keep], code[keep]
        start = np.maximum(M.ts[c], prev_m[c] + w_ns)
        lo = np.searchsorted(q.key, code * R.span + R.tkey(start), "right")
        hi = np.searchsorted(q.key, code * R.span + R.tkey(tsr + w_ns), "right")
        cnt -= cover_count(lo, hi, len(q))
    return cnt


def link_to_main(M: Level, of: str, chash, known, ts) -> tuple[np.ndarray, np.ndarray]:
    """For new rows: ts of the latest M row with the same (entity, value) and ts <= the row's,
    and the M row (main order) that follows it (-1 if none). Cached in R while M is fixed."""
    ix = M.comps[of]
    corder = np.argsort(chash, kind="stable")
    code, found = lookup(ix.groups, chash, corder)
    found &= known
    p = M.bound(ix, code, found, ts, "right", corder)
    start, end = segment(ix, code, found)
    last = take(ix.order, p - 1, found & (p > start), -1)
    last_ts = take(M.ts, last, last >= 0, NO_TS)
    nxt = take(ix.order, p, found & (p < end), -1)
    return last_ts, nxt
