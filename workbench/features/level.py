"""A *level*: window state of one entity column, sorted and searchable.

Rows are held in **main order** — sorted by (entity, ts, arrival) — as numpy arrays. Entities are
64-bit hashes; timestamps are int64 nanoseconds. To search (entity, ts) pairs with one
``np.searchsorted`` the level maps both to dense integers: ``code`` (index of the entity hash
in the sorted unique hashes ``H``) and ``rank`` (index of ts in the sorted unique timestamps
``U``); the main key is ``code * S + 2 * rank + 1`` with ``S = 2 * len(U) + 2``. Any timestamp
``x`` maps into the same space as ``2 * searchsorted(U, x) + (x in U)``, which keeps its order
relative to every stored ts, so window bounds on arbitrary times are exact.

A level also keeps one **composite index** per ``of`` column used by ``distinct``/``is_new``:
the rows with a known value, grouped by hash(entity, value) and sorted the same way.

Levels are immutable once built: :meth:`Level.build` sorts a batch, :meth:`Level.merge` merges
two levels in linear time (both inputs are sorted runs, merged by a compiled loop, see
:mod:`.compiled`) and may drop evicted rows on the way, compacting the code spaces.
"""

from __future__ import annotations

import numpy as np

from workbench.features.compiled import group_bounds, merge_order, union_positions

NO_TS = -(2**62)
"""Timestamp of "no such row": before any real ts, yet a window can be added without overflow."""

_EMPTY_U64 = np.empty(0, dtype=np.uint64)
_EMPTY_I64 = np.empty(0, dtype=np.int64)


def search(table: np.ndarray, values: np.ndarray, side: str = "left", order=None) -> np.ndarray:
    """``np.searchsorted``; with ``order`` (argsort of values) the needles are searched in
    sorted order, which is several times faster on a big table (cache-friendly)."""
    if order is None:
        return np.searchsorted(table, values, side)
    out = np.empty(len(values), dtype=np.int64)
    out[order] = np.searchsorted(table, values[order], side)
    return out


def lookup(table: np.ndarray, values: np.ndarray, order=None) -> tuple[np.ndarray, np.ndarray]:
    """Index of each value in a sorted unique table, and whether it is there."""
    idx = search(table, values, "left", order)
    if len(table) == 0:
        return idx, np.zeros(len(values), dtype=bool)
    found = table[np.minimum(idx, len(table) - 1)] == values
    return idx, found


def _runs(sx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique values of a sorted array and the index of each element in them."""
    new = np.empty(len(sx), dtype=bool)
    new[:1] = True
    np.not_equal(sx[1:], sx[:-1], out=new[1:])
    return sx[new], np.cumsum(new) - 1


def _compact(codes: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes into a table, renumbered after dropping the table entries no code uses."""
    used = np.zeros(len(table), dtype=bool)
    used[codes] = True
    if used.all():
        return codes, table
    return (np.cumsum(used) - 1)[codes], table[used]


def _starts(code: np.ndarray, groups: int) -> np.ndarray:
    """Start offsets of each group in an array of sorted group codes (length groups + 1)."""
    out = np.zeros(groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(code, minlength=groups), out=out[1:])
    return out


class Index:
    """Rows grouped by a hash and sorted by (group, ts rank, arrival).

    ``groups``: sorted unique hashes; ``code``: group code of each indexed row (in index order);
    ``order``: main-order position of each indexed row (``None`` for the main index itself);
    ``key``: sorted search key; ``starts``: first indexed row of each group.
    """

    __slots__ = ("code", "groups", "key", "order", "starts", "ts")

    def __init__(self, groups, code, order, rank_sorted, span):
        self.groups = groups
        self.code = code
        self.order = order
        self.key = code * span + 2 * rank_sorted + 1
        self.starts = _starts(code, len(groups))

    def __len__(self) -> int:
        return len(self.code)


class Level:
    """Sorted window state (see module docstring). Use :meth:`build`, :meth:`merge`."""

    def __init__(self, h, ts, rank, U, code, H, cols, comps):
        self.h = h  # uint64 entity hash per row (main order)
        self.ts = ts  # int64 ns
        self.rank = rank
        self.U = U
        self.span = 2 * len(U) + 2
        self.main = Index(H, code, None, rank, self.span)
        self.cols: dict[str, np.ndarray] = cols
        self.comps: dict[str, Index] = comps
        self.main.ts = ts
        for ix in comps.values():
            ix.ts = ts[ix.order]  # ts in index order, for the window-bound scans
        self.cache: dict[object, np.ndarray | object] = {}  # derived arrays, built on demand

    def __len__(self) -> int:
        return len(self.ts)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def empty(cls, cols: dict[str, np.dtype], comp_names) -> Level:
        """A level with no rows and the given column dtypes."""
        comps = {c: Index(_EMPTY_U64, _EMPTY_I64, _EMPTY_I64, _EMPTY_I64, 2) for c in comp_names}
        return cls(
            _EMPTY_U64,
            _EMPTY_I64,
            _EMPTY_I64,
            _EMPTY_I64,
            _EMPTY_I64,
            _EMPTY_U64,
            {k: np.empty(0, dtype=d) for k, d in cols.items()},
            comps,
        )

    @classmethod
    def build(cls, h, ts, cols, comp_hashes) -> tuple[Level, np.ndarray]:
        """Level of one batch (rows in arrival order) and the sort permutation used.

        ``comp_hashes`` maps an ``of`` column to (hash(entity, value), value known) per row.
        Stable sorts by ts then by hash give (hash, ts, arrival) order; the ts sort is nearly
        free on the usual (already time-ordered) batch.
        """
        by_ts = np.argsort(ts, kind="stable")
        U, rank_ts = _runs(ts[by_ts])
        o = np.argsort(h[by_ts], kind="stable")
        perm, rank = by_ts[o], rank_ts[o]
        H, code = _runs(h[perm])
        span = 2 * len(U) + 2
        inv = np.empty(len(perm), dtype=np.int64)
        inv[perm] = np.arange(len(perm))
        comps = {}
        for name, (chash, known) in comp_hashes.items():
            idx = by_ts[known[by_ts]]  # known rows in (ts, arrival) order
            idx = idx[np.argsort(chash[idx], kind="stable")]
            groups, gcode = _runs(chash[idx])
            pos = inv[idx]
            comps[name] = Index(groups, gcode, pos, rank[pos], span)
        level = cls(
            h[perm], ts[perm], rank, U, code, H, {k: v[perm] for k, v in cols.items()}, comps
        )
        return level, perm

    @classmethod
    def merge(cls, a: Level, b: Level, keep_fn=None) -> tuple[Level, np.ndarray]:
        """Union of two levels (``b`` arrived after ``a``) and the new position of b's rows.

        ``keep_fn(ts, code)`` (arrays in merged order) may drop rows (eviction): their
        position is -1, and the code spaces are compacted."""
        na = len(a)
        # Both levels are sorted runs and the renumbering into the union spaces keeps their
        # order, so the merged order is a linear merge of the two runs.
        U, ua, ub = union_positions(a.U, b.U)
        rank = np.concatenate([ua[a.rank], ub[b.rank]])
        H, ha, hb = union_positions(a.main.groups, b.main.groups)
        code = np.concatenate([ha[a.main.code], hb[b.main.code]])
        span = 2 * len(U) + 2
        key = code * span + 2 * rank + 1
        perm = merge_order(key[:na], key[na:])
        rank, code = rank[perm], code[perm]
        ts = np.concatenate([a.ts, b.ts])[perm]
        if keep_fn is not None:
            keep = keep_fn(ts, code)
            perm, rank, code, ts = perm[keep], rank[keep], code[keep], ts[keep]
            rank, U = _compact(rank, U)
            code, H = _compact(code, H)
            span = 2 * len(U) + 2
        inv = np.full(na + len(b), -1, dtype=np.int64)
        inv[perm] = np.arange(len(perm))
        comps = {}
        for name, ia in a.comps.items():
            ib = b.comps[name]
            groups, ga, gb = union_positions(ia.groups, ib.groups)
            gcode = np.concatenate([ga[ia.code], gb[ib.code]])
            pos = np.concatenate([inv[ia.order], inv[na + ib.order]])
            split = len(ia)
            if keep_fn is not None:
                kept = pos >= 0
                split = int(np.count_nonzero(kept[:split]))
                pos = pos[kept]
                gcode, groups = _compact(gcode[kept], groups)
            ckey = gcode * span + 2 * rank[pos] + 1
            o = merge_order(ckey[:split], ckey[split:])
            comps[name] = Index(groups, gcode[o], pos[o], rank[pos[o]], span)
        cols = {k: np.concatenate([a.cols[k], b.cols[k]])[perm] for k in b.cols if k in a.cols}
        level = cls(np.concatenate([a.h, b.h])[perm], ts, rank, U, code, H, cols, comps)
        return level, inv[na:]

    # -- searching ----------------------------------------------------------------------
    def tkey(self, x: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
        """Timestamps mapped into this level's rank space (order-preserving, exact).

        ``order`` (argsort of x) makes the search sequential: much faster on a big level."""
        k = search(self.U, x, "left", order)
        if len(self.U) == 0:
            return 2 * k
        return 2 * k + (self.U[np.minimum(k, len(self.U) - 1)] == x)

    def bound(self, ix: Index, code, found, x, side: str, order=None):
        """Per query, the first row of group ``code`` with ts >= x (``left``) or > x (``right``)
        in index ``ix``; 0 for groups not present (so ranges come out empty).

        A binary search within the group's rows (sorted by ts), compiled; ``order`` (an
        argsort of ``code``) makes it walk the arrays forwards.
        """
        if order is None:  # queries already in group order
            order = np.arange(len(x))
        return group_bounds(ix.starts, ix.ts, code, found, x, side == "right", order)

    def derived(self, name, build):
        """A derived array, computed once per level (levels are immutable)."""
        if name not in self.cache:
            self.cache[name] = build()
        return self.cache[name]

    def prefix(self, name: object, values_fn) -> np.ndarray:
        """Prefix sums (length n + 1, int64) of per-row values, cached under ``name``."""

        def build():
            out = np.zeros(len(self) + 1, dtype=np.int64)
            np.cumsum(values_fn(), dtype=np.int64, out=out[1:])
            return out

        return self.derived(("prefix", name), build)
