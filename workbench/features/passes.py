"""Compiled (numba) passes over the streaming window state of one ``by`` column.

The state (:mod:`.window_state` holds and grows the arrays) is, per entity, a linked list of
its rows in (ts, arrival) order, and per window of the entity two cursors into that list:

- ``first``: the first row that has not left the window (rows before it have ts < t - w);
- ``pend``: the first row not yet admitted (rows before it have ts < t - delay, or <= t -
  delay with a label delay); -1 for either: the end of the list. Rows from ``first`` up to
  ``pend`` are the window; their count, exact int64 sums (cents and the three limbs of the
  squared cents), known labels and frauds are kept up to date, as is the number of distinct
  values per ``distinct`` feature. The ts of both cursor rows is kept beside them, so a query
  that moves neither cursor reads no row at all.

A row at time t of an entity whose newest query ``qt`` is not later (the usual, in-order case)
moves the cursors forwards to t: each row enters and leaves each window once, so a batch costs
O(rows × windows) whatever the window sizes. A *late* row (t < qt) is answered by walking the
entity's list instead, then inserted at its place, with the windows of ``qt`` corrected. The
row is added to its entity's list after its own query, so no row ever sees itself, and rows
with the same ts never see each other (admission needs ts < t).

A window may be *conditioned* (``where``): its rows are still all walked by the cursors, but
only those whose condition bit is set (``win_cond[k]``; -1: no condition) enter its aggregates,
its max/min and its percentiles. A window read by max/min or percentiles (``win_sorted[k]``:
its slot, -1: none) also keeps its amounts sorted in a block of a shared pool
(:mod:`.quantiles`), updated as rows enter and leave it like the aggregates, so these exact
values cost a query what the rows moving in and out cost, not a walk over the window.

Per entity and ``of`` column, a *value record* keeps the two newest distinct ts of that
(entity, value) (``is_new`` needs the newest before t; in order, t is not older than either)
and its count in each ``distinct`` window.

Every stored row puts its entity on a *due queue* (a ring of (due ts, entity) in arrival
order). :func:`evict` pops what is due and drops the rows no future query can use (older than
the retention, except the last one before the lateness floor, which is still someone's
previous row), and the values and entities left without rows. Records never move: dropped
ones go on free lists that the pass takes new records from, and hash tables delete by
backward shift. So eviction costs about what the arriving rows cost, whatever the state holds.

Layout: the work is bound by memory latency, so everything one query touches of an entity is
one record (``ent`` row: list ends, cursors and aggregates of every window, distinct counts),
a stored row is one record (``row``: ints, with the floats stored bit for bit and read through
a float64 view of the same buffer), and hash tables hold (key, index) pairs side by side.
Hash tables use open addressing with linear probing over int64 hashes (index < 0: empty).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from workbench.features.quantiles import (
    MIN_CLASS,
    PM_HIGH,
    SB_CLASS,
    SB_FIELDS,
    has_pct,
    percentiles,
    sorted_add,
    sorted_read,
    sorted_remove,
)

NO_TS = -(2**62)
"""Timestamp of "no such row": before any real ts, yet a window can be added without overflow."""

# entity record: list head and tail, the previous row (last with ts < qt) and the row after it,
# newest query ts, key, the due time of its pending re-check (see :func:`evict`); then per
# window k at N_FIELDS + k * W_FIELDS: the first and pend cursors, their rows' ts and the
# A_FIELDS aggregates; then one count per distinct feature; then SB_FIELDS per sorted window
# (:mod:`.quantiles`). A free record has N_HEAD < 0 and
# links the free list through N_NEXT.
N_HEAD, N_TAIL, N_PREV, N_NEXT, N_QT, N_KEY, N_REQ = range(7)
N_FIELDS = 7
W_FIRST, W_PEND, W_FIRST_TS, W_PEND_TS, W_AGG = range(5)
A_CNT, A_S1, A_SQ2, A_SQ1, A_SQ0, A_KNOWN, A_FRAUD = range(7)
A_FIELDS = 7
W_FIELDS = W_AGG + A_FIELDS
# row record: ts, cents, next row of the entity (of the free list for a free row), the next
# row's ts (a cursor or the eviction moving to the next row knows its ts without reading it);
# then one value record index per value column (-1: value missing); then only the fields the
# group reads (their places: the ``lay`` array of :func:`row_layout`, -1: not stored): label
# (-1 unknown), the bits of the ``where`` conditions it meets, amount, lat and lon (floats as
# their bits). A row holds what its group reads, no more: rows are most of the state.
R_TS, R_CENTS, R_NEXT, R_NEXT_TS = range(4)
R_FIELDS = 4
L_LABEL, L_COND, L_AMOUNT, L_GEO, L_VALUES = range(5)  # L_GEO: lat, lon follows; L_VALUES: nc
# value record: newest ts, key, newest ts before the newest, rows referring to it (0: free, the
# free list linked through V_LAST); then one count per distinct feature
V_LAST, V_KEY, V_BEFORE, V_REFS = range(4)
V_FIELDS = 4
# counters: records ever used (high-water marks), free-list heads and lengths, live rows, the
# due queue's head and tail (monotonic), late queries so far
M_ENTITIES, M_ROWS, M_VALUES = range(3)
M_EFREE, M_RFREE, M_VFREE = range(3, 6)
M_EFREE_N, M_RFREE_N, M_VFREE_N = range(6, 9)
M_LIVE, M_QHEAD, M_QTAIL, M_LATE = range(9, 13)
M_FIELDS = 13

_LOW31 = (1 << 31) - 1


def row_layout(values: int, label: bool, cond: bool, amount: bool, geo: bool) -> np.ndarray:
    """The ``lay`` of rows with ``values`` value columns and these optional fields: per
    field its place in the row record (-1: not stored), then the number of value columns;
    the record's width is ``row_width(lay)``."""
    lay = np.full(L_VALUES + 1, -1, dtype=np.int64)
    lay[L_VALUES] = values
    at = R_FIELDS + values
    for field, wanted, width in ((L_LABEL, label, 1), (L_COND, cond, 1), (L_AMOUNT, amount, 1),
                                 (L_GEO, geo, 2)):  # fmt: skip
        if wanted:
            lay[field] = at
            at += width
    return lay


def row_width(lay: np.ndarray) -> int:
    """Fields of a row record of layout ``lay``."""
    return (
        R_FIELDS
        + int(lay[L_VALUES])
        + sum((2 if f == L_GEO else 1) for f in range(L_VALUES) if lay[f] >= 0)
    )


def entity_fields(windows: int, distinct: int, sorted_windows: int = 0) -> int:
    return N_FIELDS + windows * W_FIELDS + distinct + sorted_windows * SB_FIELDS


@intrinsic
def _prefetch(typingctx, arr, i, j):  # pragma: no cover - compiled
    """Hint the CPU to load the cache line of ``arr[i, j]`` (a 2D array) for later."""

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer2(
            context,
            builder,
            ary.data,
            cgutils.unpack_tuple(builder, ary.shape),
            cgutils.unpack_tuple(builder, ary.strides),
            aryty.layout,
            [args[1], args[2]],
            wraparound=False,
            boundscheck=False,
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        rw, locality, data = ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)
        builder.call(fn, [builder.bitcast(ptr, i8p), rw, locality, data])
        return context.get_dummy_value()

    return types.void(arr, i, j), codegen


@njit(inline="always")
def _home(key, mask):  # pragma: no cover - compiled
    return (key ^ (key >> 29)) & mask


@njit(inline="always")
def _probe(tab, key):  # pragma: no cover - compiled
    mask = len(tab) - 1
    i = _home(key, mask)
    while tab[i, 1] >= 0 and tab[i, 0] != key:
        i = (i + 1) & mask
    return i


@njit(inline="always")
def _claim(tab, j, key, meta, high, free, head_link):  # pragma: no cover - compiled
    """Put ``key`` in the empty bucket j with a new record: the head of the free list
    ``meta[free]`` (``head_link``: that record's link, read by the caller) or else the next
    unused one (``meta[high]``); returns the record. No record array is passed in: passing
    one into an inlined helper cost reference counting on every row."""
    x = meta[free]
    if x >= 0:
        meta[free] = head_link
        meta[free + 3] -= 1  # the list's length (M_*FREE_N = M_*FREE + 3)
    else:
        x = meta[high]
        meta[high] += 1
    tab[j, 0] = key
    tab[j, 1] = x
    return x


@njit(inline="always")
def _head_link(recs, head, link):  # pragma: no cover - compiled
    return recs[head, link] if head >= 0 else -1


@njit(inline="always")
def _delete(tab, key):  # pragma: no cover - compiled
    """Remove ``key`` from the table (backward-shift deletion: no tombstones)."""
    mask = len(tab) - 1
    i = _probe(tab, key)
    if tab[i, 1] < 0:
        return
    j = i
    while True:
        j = (j + 1) & mask
        if tab[j, 1] < 0:
            break
        k = _home(tab[j, 0], mask)
        # the entry at j stays unless its home is cyclically outside (i, j]
        if (i < j and i < k <= j) or (i > j and (k > i or k <= j)):
            continue
        tab[i, 0] = tab[j, 0]
        tab[i, 1] = tab[j, 1]
        i = j
    tab[i, 1] = -1


@njit(cache=True, nogil=True)
def regrow(tab, out):  # pragma: no cover - compiled
    """Insert the entries of ``tab`` into ``out``, a larger empty table (every index < 0).

    Taken in bucket order, keys come (almost) sorted by home bucket, so the new table is
    written nearly in order: a pass over memory, not one cache miss per key."""
    for i in range(len(tab)):
        if tab[i, 1] >= 0:
            j = _probe(out, tab[i, 0])
            out[j, 0] = tab[i, 0]
            out[j, 1] = tab[i, 1]
    return out


@njit(cache=True, nogil=True)
def ring_copy(old, new, tail, head):  # pragma: no cover - compiled
    """Copy the ring entries at positions tail..head-1 (monotonic) from ``old`` into the
    larger ring ``new``, each at its position modulo the ring's size."""
    om = len(old)
    nm = len(new)
    for i in range(tail, head):
        new[i % nm, 0] = old[i % om, 0]
        new[i % nm, 1] = old[i % om, 1]


@njit(inline="always")
def _meets(row, e, bit, lay):  # pragma: no cover - compiled
    """Row e counts in a window with condition ``bit`` (-1: every row counts; a group with
    a condition stores the bits)."""
    return bit < 0 or (row[e, lay[L_COND]] >> bit) & 1 == 1


@njit(inline="always")
def _account(
    ent, vrec, row, rowf, pool, pm, s, k, e, sign, dist_comp, dist_win, dbase, win_cond,
    win_sorted, lay,
):  # fmt: skip  # pragma: no cover - compiled
    """Add (sign 1) or remove (sign -1) row e to/from window k of entity s (nothing when the
    row does not meet the window's condition); returns 0, or (adding only) the floats the
    pool of sorted amounts lacks room for: then nothing was changed (the caller grows the
    pool and adds the row again)."""
    if not _meets(row, e, win_cond[k], lay):
        return 0
    sb = win_sorted[k]
    if sb >= 0:
        b = dbase + len(dist_win) + sb * SB_FIELDS
        if sign > 0:
            need = sorted_add(pool, pm, ent, s, b, rowf[e, lay[L_AMOUNT]])
            if need:
                return need
        else:
            sorted_remove(pool, pm, ent, s, b, rowf[e, lay[L_AMOUNT]])
    a = N_FIELDS + k * W_FIELDS + W_AGG
    c = row[e, R_CENTS]
    ent[s, a + A_CNT] += sign
    ent[s, a + A_S1] += sign * c
    c1 = c >> 31
    c0 = c & _LOW31
    ent[s, a + A_SQ2] += sign * (c1 * c1)
    ent[s, a + A_SQ1] += sign * (c1 * c0)
    ent[s, a + A_SQ0] += sign * (c0 * c0)
    lab = row[e, lay[L_LABEL]] if lay[L_LABEL] >= 0 else -1
    if lab >= 0:
        ent[s, a + A_KNOWN] += sign
        if lab == 1:
            ent[s, a + A_FRAUD] += sign
    for j in range(len(dist_win)):
        if dist_win[j] == k:
            x = row[e, R_FIELDS + dist_comp[j]]
            if x >= 0:
                vrec[x, V_FIELDS + j] += sign
                n = vrec[x, V_FIELDS + j]
                if (sign > 0 and n == 1) or (sign < 0 and n == 0):
                    ent[s, dbase + j] += sign
    return 0


@njit(inline="always")
def _admits(ts, limit, delay):  # pragma: no cover - compiled
    return ts < limit if delay == 0 else ts <= limit


@njit(cache=True, nogil=True)
def step(
    order,
    h,
    ts,
    cents,
    label,
    fl,
    cond,
    vkey,
    vknown,
    win_w,
    win_d,
    win_ext,
    win_cond,
    win_sorted,
    pct_win,
    pct_q,
    dist_comp,
    dist_win,
    lay,
    etab,
    ent,
    row,
    rowf,
    vtab,
    vrec,
    mark,
    meta,
    queue,
    pool,
    pm,
    retention,
    o_agg,
    o_ext,
    o_dist,
    o_vlast,
    o_pts,
    o_prev,
    o_pct,
    start,
    resume,
    buf,
):  # pragma: no cover - compiled
    """Query, then add, the batch rows ``order[start:]`` (ts-sorted) of one ``by`` column.

    Per row r: ``o_agg[r, k]`` the aggregates of window k, ``o_ext[r, k]`` (max, min) of
    amount where ``win_ext[k]``, ``o_dist[r, j]`` the distinct count of feature j,
    ``o_vlast[r, c]`` the newest ts before t of the row's (entity, value of column c),
    ``o_pts[r]``, ``o_prev[r]`` the ts (NO_TS when none) and (lat, lon) of the entity's
    previous row, ``o_pct[r, j]`` percentile feature j (of window ``pct_win[j]``); ``cond[r]``
    the bits of the conditions row r meets; ``lay``: the row layout (:func:`row_layout`).
    Each row's entity goes on the due ``queue`` at
    ``ts + retention`` (see :func:`evict`). Capacities must have been ensured for
    ``len(order)`` more rows, entities and values per column, and queue entries; the pool of
    sorted amounts (``pool``, ``pm``: :mod:`.quantiles`) is never replaced here (an array
    variable reassigned anywhere in this loop costs atomic reference counting on every
    inlined call that takes it: it was a quarter of the engine's time). When it lacks room
    the pass stops and returns ``(i, p, need)``: row ``order[i]`` (stored as row record p,
    p < 0: not stored yet) needs ``need`` more floats past the pool's high-water mark; the
    caller grows the pool and calls again with ``start = i``, ``resume = p``; ``need`` < 0:
    a late row's window holds more amounts than the scratch ``buf`` (for percentiles) does,
    the caller passes one of at least ``-need`` floats. Returns ``(len(order), -1, 0)`` when
    every row is done.
    """
    nc = vkey.shape[0]
    nw = len(win_w)
    dbase = N_FIELDS + nw * W_FIELDS
    rowv = np.empty(nc, dtype=np.int64)
    acc = np.zeros(A_FIELDS, dtype=np.int64)
    n = len(order)
    emask = len(etab) - 1
    vmask = len(vtab) - 1
    width = ent.shape[1]
    qlen = len(queue)  # any size: positions are taken modulo it
    sbase = dbase + len(dist_win)
    for i in range(start, n):
        # Prefetch: hash buckets 16 rows ahead, entity records 8 rows ahead.
        if i + 16 < n:
            q = order[i + 16]
            _prefetch(etab, (h[q] ^ (h[q] >> 29)) & emask, 0)
            for c in range(nc):
                _prefetch(vtab, (vkey[c, q] ^ (vkey[c, q] >> 29)) & vmask, 0)
        if i + 8 < n:
            q = order[i + 8]
            j = _probe(etab, h[q])
            if etab[j, 1] >= 0:
                for f in range(0, width, 8):
                    _prefetch(ent, etab[j, 1], f)
            for c in range(nc):
                j = _probe(vtab, vkey[c, q])
                if vtab[j, 1] >= 0:
                    _prefetch(vrec, vtab[j, 1], 0)
        if i + 4 < n:  # the rows the cursors will admit or let go
            q = order[i + 4]
            s4 = etab[_probe(etab, h[q]), 1]
            if s4 >= 0:
                if ent[s4, N_NEXT] >= 0:
                    _prefetch(row, ent[s4, N_NEXT], 0)
                for k in range(nw):
                    f = N_FIELDS + k * W_FIELDS
                    cur = ent[s4, f + W_FIRST]
                    if cur >= 0 and ent[s4, f + W_FIRST_TS] < ts[q] - win_w[k]:
                        _prefetch(row, cur, 0)
                    cur = ent[s4, f + W_PEND]
                    if cur >= 0 and win_d[k] > 0 and ent[s4, f + W_PEND_TS] <= ts[q] - win_d[k]:
                        _prefetch(row, cur, 0)
        if i + 2 < n and len(dist_win):  # value records the distinct windows will count
            q = order[i + 2]
            s2 = etab[_probe(etab, h[q]), 1]
            if s2 >= 0:
                for jj in range(len(dist_win)):
                    f2 = N_FIELDS + dist_win[jj] * W_FIELDS
                    for cur in (ent[s2, f2 + W_PEND], ent[s2, f2 + W_FIRST]):
                        if cur >= 0:
                            x2 = row[cur, R_FIELDS + dist_comp[jj]]
                            if x2 >= 0:
                                _prefetch(vrec, x2, 0)
        r = order[i]
        key = h[r]
        t = ts[r]
        j = _probe(etab, key)
        s = etab[j, 1]
        if i == start and resume >= 0:  # stored by the previous call, stopped in _in_order
            p = resume
            for c in range(nc):
                rowv[c] = row[p, R_FIELDS + c]
            qt = t
        else:
            p, qt = -1, NO_TS
        if p < 0 and s >= 0 and t < ent[s, N_QT]:
            # a late row adds itself once to each sorted window: room for a larger block
            # of each, before anything of the row is stored
            need = 0
            for k in range(len(win_w)):
                if win_sorted[k] >= 0:
                    c = ent[s, sbase + win_sorted[k] * SB_FIELDS + SB_CLASS]
                    need += 1 << (c + 1) if c > 0 else 1 << MIN_CLASS
            if pm[PM_HIGH] + need > len(pool):
                return i, -1, need
            if len(pct_win):  # its percentiles gather the amounts of the entity's rows
                m = 0
                e = ent[s, N_HEAD]
                while e >= 0 and row[e, R_TS] < t:
                    m += 1
                    e = row[e, R_NEXT]
                if m > len(buf):
                    return i, -1, -m
        if p < 0:
            # store the row: its entity and value records, row record, due-queue entry
            new = s < 0
            if new:
                link = _head_link(ent, meta[M_EFREE], N_NEXT)
                s = _claim(etab, j, key, meta, M_ENTITIES, M_EFREE, link)
                ent[s, :] = 0
                ent[s, N_HEAD] = -1
                ent[s, N_TAIL] = -1
                ent[s, N_PREV] = -1
                ent[s, N_NEXT] = -1
                ent[s, N_QT] = NO_TS
                ent[s, N_KEY] = key
                ent[s, N_REQ] = NO_TS
                for k in range(nw):
                    ent[s, N_FIELDS + k * W_FIELDS + W_FIRST] = -1
                    ent[s, N_FIELDS + k * W_FIELDS + W_PEND] = -1
            for c in range(nc):
                rowv[c] = -1
                if vknown[c, r]:
                    vk = vkey[c, r]
                    j = _probe(vtab, vk)
                    x = vtab[j, 1]
                    new = x < 0
                    if new:
                        link = _head_link(vrec, meta[M_VFREE], V_LAST)
                        x = _claim(vtab, j, vk, meta, M_VALUES, M_VFREE, link)
                        vrec[x, :] = 0
                        vrec[x, V_LAST] = NO_TS
                        vrec[x, V_BEFORE] = NO_TS
                        vrec[x, V_KEY] = vk
                    vrec[x, V_REFS] += 1
                    rowv[c] = x
            p = meta[M_RFREE]
            if p >= 0:
                meta[M_RFREE] = row[p, R_NEXT]
                meta[M_RFREE_N] -= 1
            else:
                p = meta[M_ROWS]
                meta[M_ROWS] += 1
            meta[M_LIVE] += 1
            qi = meta[M_QHEAD] % qlen
            meta[M_QHEAD] += 1
            queue[qi, 0] = t + retention
            queue[qi, 1] = s
            row[p, R_TS] = t
            row[p, R_CENTS] = cents[r]
            if lay[L_LABEL] >= 0:
                row[p, lay[L_LABEL]] = label[r]
            if lay[L_COND] >= 0:
                row[p, lay[L_COND]] = cond[r]
            if lay[L_AMOUNT] >= 0:
                rowf[p, lay[L_AMOUNT]] = fl[r, 0]
            if lay[L_GEO] >= 0:
                rowf[p, lay[L_GEO]] = fl[r, 1]
                rowf[p, lay[L_GEO] + 1] = fl[r, 2]
            for c in range(nc):
                row[p, R_FIELDS + c] = rowv[c]
            qt = ent[s, N_QT]
        if t >= qt:
            need = _in_order(
                r, s, p, t, ent, row, rowf, vrec, rowv, win_w, win_d, win_cond, win_sorted, lay,
                pct_win, pct_q, pool, pm, dist_comp, dist_win, dbase, o_agg, o_ext, o_dist,
                o_vlast, o_pts, o_prev, o_pct,
            )  # fmt: skip
            if need:
                return i, p, need
        else:
            meta[M_LATE] += 1
            _late(
                r, s, p, meta[M_LATE], t, qt, ent, row, rowf, vrec, mark, rowv, acc, win_w,
                win_d, win_ext, win_cond, win_sorted, lay, pct_win, pct_q, buf, pool, pm,
                dist_comp, dist_win, dbase, (o_agg, o_ext, o_dist, o_vlast, o_pts, o_prev, o_pct),
            )  # fmt: skip
    return n, -1, 0


@njit(inline="always")
def _in_order(
    r, s, p, t, ent, row, rowf, vrec, rowv, win_w, win_d, win_cond, win_sorted, lay, pct_win,
    pct_q, pool, pm, dist_comp, dist_win, dbase, o_agg, o_ext, o_dist, o_vlast, o_pts, o_prev,
    o_pct,
):  # fmt: skip  # pragma: no cover - compiled
    """Query, then append, row r (in order: t is not older than the entity's newest query).
    Returns 0, or the floats the pool of sorted amounts lacks: then it stopped before a row
    entered a window (cursors and aggregates consistent, no output or value record written
    yet), and a call after the pool grew resumes where it stopped."""
    nc = len(rowv)
    sbase = dbase + len(dist_win)
    ent[s, N_QT] = t
    # The previous row: the last with ts < t (usually the tail, read once for all windows).
    b = ent[s, N_PREV]
    nx = ent[s, N_NEXT]
    while nx >= 0 and row[nx, R_TS] < t:
        b = nx
        nx = row[nx, R_NEXT]
    ent[s, N_PREV] = b
    ent[s, N_NEXT] = nx
    for k in range(len(win_w)):
        f = N_FIELDS + k * W_FIELDS
        d = win_d[k]
        limit = t - d
        pend = ent[s, f + W_PEND]
        while pend >= 0 and _admits(ent[s, f + W_PEND_TS], limit, d):
            need = _account(
                ent, vrec, row, rowf, pool, pm, s, k, pend, 1, dist_comp, dist_win, dbase,
                win_cond, win_sorted, lay,
            )  # fmt: skip
            if need:  # the pool must grow: stop before any output is written
                return need
            ent[s, f + W_PEND_TS] = row[pend, R_NEXT_TS]
            pend = row[pend, R_NEXT]
            ent[s, f + W_PEND] = pend
        lo = t - win_w[k]
        first = ent[s, f + W_FIRST]
        while first != pend and ent[s, f + W_FIRST_TS] < lo:
            _account(
                ent, vrec, row, rowf, pool, pm, s, k, first, -1, dist_comp, dist_win, dbase,
                win_cond, win_sorted, lay,
            )  # fmt: skip
            ent[s, f + W_FIRST_TS] = row[first, R_NEXT_TS]
            first = row[first, R_NEXT]
            ent[s, f + W_FIRST] = first
        for a in range(A_FIELDS):
            o_agg[r, k, a] = ent[s, f + W_AGG + a]
        if win_sorted[k] >= 0:
            sb = sbase + win_sorted[k] * SB_FIELDS
            sorted_read(pool, ent, s, sb, k, r, pct_win, pct_q, o_ext, o_pct)
    for j in range(len(dist_win)):
        o_dist[r, j] = ent[s, dbase + j]
    # Newest ts of the row's values before t (in order: t is not older than any stored ts),
    # then the row's own ts becomes the newest.
    for c in range(nc):
        x = rowv[c]
        if x < 0:
            o_vlast[r, c] = NO_TS
            continue
        last = vrec[x, V_LAST]
        o_vlast[r, c] = last if last < t else vrec[x, V_BEFORE]
        if t > last:
            vrec[x, V_BEFORE] = last
            vrec[x, V_LAST] = t
    if b >= 0:  # the previous row (as _previous does; not called: see step)
        o_pts[r] = row[b, R_TS]
        g = lay[L_GEO]
        o_prev[r, 0] = rowf[b, g] if g >= 0 else np.nan
        o_prev[r, 1] = rowf[b, g + 1] if g >= 0 else np.nan
    else:
        o_pts[r] = NO_TS
        o_prev[r, 0] = np.nan
        o_prev[r, 1] = np.nan
    # append at the tail (its ts is the entity's newest); cursors at the end now point at it
    row[p, R_NEXT] = -1
    row[p, R_NEXT_TS] = NO_TS
    tail = ent[s, N_TAIL]
    if tail >= 0:
        row[tail, R_NEXT] = p
        row[tail, R_NEXT_TS] = t
    else:
        ent[s, N_HEAD] = p
    ent[s, N_TAIL] = p
    if nx < 0:
        ent[s, N_NEXT] = p
    for k in range(len(win_w)):
        f = N_FIELDS + k * W_FIELDS
        if ent[s, f + W_PEND] < 0:
            ent[s, f + W_PEND] = p
            ent[s, f + W_PEND_TS] = t
        if ent[s, f + W_FIRST] < 0:
            ent[s, f + W_FIRST] = p
            ent[s, f + W_FIRST_TS] = t
    return 0


@njit(inline="always")
def _previous(r, b, row, rowf, lay, o_pts, o_prev):  # pragma: no cover - compiled
    if b >= 0:
        o_pts[r] = row[b, R_TS]
        g = lay[L_GEO]
        o_prev[r, 0] = rowf[b, g] if g >= 0 else np.nan
        o_prev[r, 1] = rowf[b, g + 1] if g >= 0 else np.nan
    else:
        o_pts[r] = NO_TS
        o_prev[r, 0] = np.nan
        o_prev[r, 1] = np.nan


@njit(inline="always")
def _late(
    r, s, p, lq, t, qt, ent, row, rowf, vrec, mark, rowv, acc, win_w, win_d, win_ext, win_cond,
    win_sorted, lay, pct_win, pct_q, buf, pool, pm, dist_comp, dist_win, dbase, outs,
):  # fmt: skip  # pragma: no cover - compiled
    """A row older than its entity's newest query: walk the list, then insert the row
    (:func:`step` made room in the pool for the row's additions to the sorted windows, and
    gave a ``buf`` that holds the amounts of the entity's rows). ``outs``: the
    output arrays of :func:`step` (a tuple: a call of over 30 arguments is not inlined)."""
    o_agg, o_ext, o_dist, o_vlast, o_pts, o_prev, o_pct = outs
    nc = len(rowv)
    nd = len(dist_win)
    for k in range(len(win_w)):
        pct = has_pct(pct_win, k)
        acc[:] = 0
        hi = -np.inf
        lo_ = np.inf
        nan = False
        lo, d = t - win_w[k], win_d[k]
        for j in range(nd):
            if dist_win[j] == k:
                o_dist[r, j] = 0
        m = 0
        e = ent[s, N_HEAD]
        while e >= 0 and row[e, R_TS] < t:
            te = row[e, R_TS]
            if te >= lo and _admits(te, t - d, d) and _meets(row, e, win_cond[k], lay):
                c = row[e, R_CENTS]
                c1 = c >> 31
                c0 = c & _LOW31
                acc[A_CNT] += 1
                acc[A_S1] += c
                acc[A_SQ2] += c1 * c1
                acc[A_SQ1] += c1 * c0
                acc[A_SQ0] += c0 * c0
                if lay[L_LABEL] >= 0 and row[e, lay[L_LABEL]] >= 0:
                    acc[A_KNOWN] += 1
                    if row[e, lay[L_LABEL]] == 1:
                        acc[A_FRAUD] += 1
                if lay[L_AMOUNT] >= 0:  # stored when a window reads max/min or percentiles
                    v = rowf[e, lay[L_AMOUNT]]
                    if pct:
                        buf[m] = v
                    m += 1
                    hi, lo_, nan = max(hi, v), min(lo_, v), nan or v != v
                for j in range(nd):
                    if dist_win[j] == k:
                        x = row[e, R_FIELDS + dist_comp[j]]
                        if x >= 0 and mark[x, j] != lq:
                            mark[x, j] = lq  # the late query's number: unique
                            o_dist[r, j] += 1
            e = row[e, R_NEXT]
        for a in range(A_FIELDS):
            o_agg[r, k, a] = acc[a]
        if win_ext[k]:
            o_ext[r, k, 0] = np.nan if nan or acc[A_CNT] == 0 else hi
            o_ext[r, k, 1] = np.nan if nan or acc[A_CNT] == 0 else lo_
        if pct:
            percentiles(buf, m, k, r, pct_win, pct_q, o_pct)
    # newest ts per value, previous row, insertion point (after every row with ts <= t)
    for c in range(nc):
        o_vlast[r, c] = NO_TS
    b = -1
    after = -1
    e = ent[s, N_HEAD]
    while e >= 0 and row[e, R_TS] <= t:
        if row[e, R_TS] < t:
            b = e
            for c in range(nc):
                if rowv[c] >= 0 and row[e, R_FIELDS + c] == rowv[c]:
                    o_vlast[r, c] = row[e, R_TS]
        after = e
        e = row[e, R_NEXT]
    _previous(r, b, row, rowf, lay, o_pts, o_prev)
    if after >= 0:
        row[p, R_NEXT] = row[after, R_NEXT]
        row[p, R_NEXT_TS] = row[after, R_NEXT_TS]
        row[after, R_NEXT] = p
        row[after, R_NEXT_TS] = t
    else:
        row[p, R_NEXT] = ent[s, N_HEAD]
        row[p, R_NEXT_TS] = row[ent[s, N_HEAD], R_TS] if ent[s, N_HEAD] >= 0 else NO_TS
        ent[s, N_HEAD] = p
    if after == ent[s, N_TAIL]:
        ent[s, N_TAIL] = p
    nxt = row[p, R_NEXT]
    # The state of qt: t < qt, so the row is before the previous row's successor ...
    for c in range(nc):
        x = rowv[c]
        if x >= 0:
            if t > vrec[x, V_LAST]:
                vrec[x, V_BEFORE] = vrec[x, V_LAST]
                vrec[x, V_LAST] = t
            elif t < vrec[x, V_LAST] and t > vrec[x, V_BEFORE]:
                vrec[x, V_BEFORE] = t
    if after == ent[s, N_PREV]:
        ent[s, N_PREV] = p
    # ... and, for each window of qt, before it, in it or pending.
    for k in range(len(win_w)):
        f = N_FIELDS + k * W_FIELDS
        d = win_d[k]
        if not _admits(t, qt - d, d):  # pending
            if nxt == ent[s, f + W_PEND]:
                ent[s, f + W_PEND] = p
                ent[s, f + W_PEND_TS] = t
            if nxt == ent[s, f + W_FIRST]:
                ent[s, f + W_FIRST] = p
                ent[s, f + W_FIRST_TS] = t
        elif t >= qt - win_w[k]:  # in the window
            _account(
                ent, vrec, row, rowf, pool, pm, s, k, p, 1, dist_comp, dist_win, dbase,
                win_cond, win_sorted, lay,
            )  # fmt: skip
            if nxt == ent[s, f + W_FIRST]:
                ent[s, f + W_FIRST] = p
                ent[s, f + W_FIRST_TS] = t


@njit(cache=True, nogil=True)
def evict(
    newest, retention, lateness, lookback, keep_previous, dist_comp, dist_win, win_cond,
    win_sorted, lay, etab, ent, row, rowf, vtab, vrec, meta, queue, pool, pm,
):  # fmt: skip  # pragma: no cover - compiled
    """Drop the rows no future query can use, popping the due queue up to ``newest``.

    Every stored row put its entity on the queue, due when the row is older than the
    retention; so, taken in order, the queue names each entity with rows to drop soon after
    they can go, and work per batch follows the rows that arrived (not the state held). Per
    entity, the rows older than the cutoff (a prefix of its list) are dropped, except the last
    of them while it is still the previous row of a query at or after the lateness floor
    (within ``lookback``): such an entity is queued again, once, a retention later. Dropped
    rows, values no row refers to any more and entities left without rows go back to their
    free lists (and out of their hash tables). Returns the number of rows dropped and the
    pool of sorted amounts (the same one: a block that cannot shrink for want of room
    stays as it is)."""
    nc = lay[L_VALUES]
    nw = len(win_cond)
    dbase = N_FIELDS + nw * W_FIELDS
    cutoff = newest - retention
    floor = newest - lateness
    qlen = len(queue)  # any size: positions are taken modulo it
    phase = np.empty(nw, dtype=np.int64)
    dropped = 0
    width = ent.shape[1]
    vmask = len(vtab) - 1
    while meta[M_QTAIL] < meta[M_QHEAD]:
        qi = meta[M_QTAIL] % qlen
        if queue[qi, 0] >= newest:
            break
        # Prefetch along the queue: entity records 16 entries ahead, their first rows 8
        # ahead, those rows' value records 4 ahead and the buckets of values about to go 2
        # ahead (entries past the due ones only cost a wasted prefetch). The row after a
        # dropped one is not read: its ts is kept in the dropped row.
        end = meta[M_QHEAD]
        a = meta[M_QTAIL]
        if a + 16 < end:
            _prefetch(ent, queue[(a + 16) % qlen, 1], 0)
        if a + 8 < end:
            s8 = queue[(a + 8) % qlen, 1]
            for f in range(8, width, 8):
                _prefetch(ent, s8, f)
            if ent[s8, N_HEAD] >= 0:
                _prefetch(row, ent[s8, N_HEAD], 0)
        if a + 4 < end:
            e4 = ent[queue[(a + 4) % qlen, 1], N_HEAD]
            if e4 >= 0:
                for c in range(nc):
                    if row[e4, R_FIELDS + c] >= 0:
                        _prefetch(vrec, row[e4, R_FIELDS + c], 0)
        if a + 2 < end:
            e2 = ent[queue[(a + 2) % qlen, 1], N_HEAD]
            if e2 >= 0:
                for c in range(nc):
                    x = row[e2, R_FIELDS + c]
                    if x >= 0 and vrec[x, V_REFS] == 1:
                        _prefetch(vtab, _home(vrec[x, V_KEY], vmask), 0)
        meta[M_QTAIL] += 1
        s = queue[qi, 1]
        if ent[s, N_HEAD] < 0:  # freed since it was queued
            continue
        # Rows older than the cutoff form a prefix of the list; the last of them survives
        # while it is the previous row of any query at or after the floor.
        e = ent[s, N_HEAD]
        e_ts = row[e, R_TS]
        last_old = -1
        while e >= 0 and e_ts < cutoff:
            last_old = e
            e_ts = row[e, R_NEXT_TS]
            e = row[e, R_NEXT]
        stop = e  # first row kept for its age
        stop_ts = e_ts
        if last_old >= 0 and keep_previous:
            nx = row[last_old, R_NEXT]
            nx_ts = row[last_old, R_NEXT_TS]
            if (nx < 0 or nx_ts >= floor) and row[last_old, R_TS] >= floor - lookback:
                stop = last_old
                stop_ts = row[last_old, R_TS]
        # Drop the rows before ``stop``: those in a window leave it; a cursor on a dropped
        # row moves to ``stop``, the first kept row.
        phase[:] = 0  # per window: 0 before its first row, 1 in it, 2 pending
        dropped_prev = dropped_next = False
        e = ent[s, N_HEAD]
        while e != stop:
            for k in range(nw):
                f = N_FIELDS + k * W_FIELDS
                if e == ent[s, f + W_PEND]:
                    phase[k] = 2
                elif e == ent[s, f + W_FIRST]:
                    phase[k] = 1
                if phase[k] == 1:
                    _account(
                        ent, vrec, row, rowf, pool, pm, s, k, e, -1, dist_comp, dist_win, dbase,
                        win_cond, win_sorted, lay,
                    )  # fmt: skip
            dropped_prev |= e == ent[s, N_PREV]
            dropped_next |= e == ent[s, N_NEXT]
            nxt = row[e, R_NEXT]
            for c in range(nc):
                x = row[e, R_FIELDS + c]
                if x >= 0:
                    vrec[x, V_REFS] -= 1
                    if vrec[x, V_REFS] == 0:
                        _delete(vtab, vrec[x, V_KEY])
                        vrec[x, V_LAST] = meta[M_VFREE]
                        meta[M_VFREE] = x
                        meta[M_VFREE_N] += 1
            row[e, R_NEXT] = meta[M_RFREE]
            meta[M_RFREE] = e
            meta[M_RFREE_N] += 1
            meta[M_LIVE] -= 1
            dropped += 1
            e = nxt
        if stop < 0:  # no rows left: the entity goes
            _delete(etab, ent[s, N_KEY])
            ent[s, N_HEAD] = -1
            ent[s, N_NEXT] = meta[M_EFREE]
            meta[M_EFREE] = s
            meta[M_EFREE_N] += 1
            continue
        ent[s, N_HEAD] = stop
        for k in range(nw):
            f = N_FIELDS + k * W_FIELDS
            if phase[k] >= 1:
                ent[s, f + W_FIRST] = stop
                ent[s, f + W_FIRST_TS] = stop_ts
            if phase[k] == 2:
                ent[s, f + W_PEND] = stop
                ent[s, f + W_PEND_TS] = stop_ts
        if dropped_prev:
            ent[s, N_PREV] = -1
        if dropped_next:
            ent[s, N_NEXT] = stop
        if stop == last_old and ent[s, N_REQ] < newest:
            # kept as a previous row: look again a retention later (the queue's tail is due
            # about then too, so it stays in order)
            qi = meta[M_QHEAD] % qlen
            meta[M_QHEAD] += 1
            queue[qi, 0] = newest + retention
            queue[qi, 1] = s
            ent[s, N_REQ] = newest + retention
    return dropped, pool
