"""The arrays of one ``by`` column's streaming window state (:mod:`.passes` works on them).

Records live in arrays indexed by record number, with free lists for the records the
eviction (:func:`passes.evict`) gives back, so a record never moves: capacities grow before a
batch needs them (:meth:`WindowState.ensure`; doubling while an array is small, by
``GROWTH`` = 1.25x past ``SMALL_BYTES``), and only while the state itself grows (when the
stream starts, or its rate rises); a state that has reached its retention reuses freed records
instead. The due queue is a ring of (due ts, entity) pairs. The pool of sorted amounts
(:mod:`.quantiles`) is grown here too, ahead of what a batch's rows would take in new smallest
blocks; a batch that needs more grows it inside the pass.

Growing copies an array into a new one, and writing to memory the process never touched
costs page faults (measured ~2.5 ms per MB on a virtual machine, so a 1M-row array took
200 ms). So while an array fills up, :meth:`WindowState.prepare` makes its successor ready
ahead of need, touching a slice of its pages per call; the copy then lands on warm pages.
Successors cost memory the state does not use yet, so a state holds at most ``SPARE_BYTES``
of them (a larger array grows into a cold one, in :meth:`Group.maintain` between batches), and
gives one back when its array stops filling up.

Memory (``benchmarks/bench_memory.py``: the default rules and simulator, 60,000 rows per
simulated day, batches of 1,000, 93 days): the state holds what the longest window of each
column reaches back, a row per transaction per ``by`` column (1.8 M rows by card, 2.2 M by
customer, 1.7 M by terminal). A stored row holds only the fields its group reads
(:func:`passes.row_layout`): 72 bytes by card (three ``is_new`` value columns, lat/lon), 40 by
customer and by terminal, plus 16 bytes of due queue each. Per card 9.2 kB (its ~69 rows, its
entity record, its ~19 (card, value) records); per customer 8.3 kB; per terminal 25.7 kB (its
~420 rows); the whole state (487 MiB) is 19.6 kB per card. The arrays allocated are 1.13x the
bytes in use (growth headroom, hash tables at a load of at most 1/2, sorted-amount blocks
between a quarter full and full). Peak RSS of the whole worker: 936-986 MiB, 332 of them the
process at rest.
"""

from __future__ import annotations

import copy

import numpy as np

from workbench.features import passes as P
from workbench.features.quantiles import MIN_CLASS, PM_HIGH, new_pool

_MIN_CAP = 64


def _table_size(entries: int) -> int:
    """Buckets for a hash table of ``entries`` (load factor at most 1/2, a power of two)."""
    return max(_MIN_CAP, 1 << int(2 * max(entries, 1) - 1).bit_length())


TOUCH_BYTES = 4 << 20
"""Pages of successor arrays that one :meth:`WindowState.prepare` call makes ready."""

SPARE_BYTES = 128 << 20
"""Successors held at once, at most (bytes): a larger array grows into a cold one."""

SMALL_BYTES = 4 << 20
"""Arrays up to this size double when they grow; larger ones grow by ``GROWTH``."""
GROWTH = 1.25
"""Growth factor of a large array: a state at its retention holds at most this much more
records than it ever used at once (doubling held up to twice, and three times while it grew
into a prepared successor)."""


def grown(records: int, width: int) -> int:
    """Records of the successor of an array of ``records`` x ``width`` int64."""
    if records * width * 8 <= SMALL_BYTES:
        return 2 * records
    return int(records * GROWTH) + 1


# The arrays that grow: name -> fill of new elements (None: left as they are). Hash tables
# are filled with -1 (every bucket empty).
_FILL = {"ent": None, "row": None, "vrec": None, "mark": -1, "queue": None, "etab": -1, "vtab": -1}


class _Spare:
    """The successor of one array, its pages touched a slice at a time: all of it when it
    has a fill, else the rows the growth will copy into (the rest is touched as records
    arrive, a batch at a time, as in any array)."""

    def __init__(self, shape: tuple[int, int], fill: int | None, copied: int) -> None:
        self.array = np.empty(shape, dtype=np.int64)
        self.fill = fill
        self.goal = shape[0] if fill is not None else copied
        self.touched = 0  # leading rows touched so far

    def touch(self, rows: int) -> int:
        """Touch up to ``rows`` more rows (up to the goal); the number touched."""
        end = min(self.goal, self.touched + rows)
        self.array[self.touched : end] = 0 if self.fill is None else self.fill
        done, self.touched = end - self.touched, end
        return done


class WindowState:
    """Entity records, stored rows and value records with their hash tables, and the due
    queue, for ``windows`` windows, ``columns`` value columns and ``distinct`` distinct
    features; and the pool of sorted amounts of ``sorted_windows`` windows."""

    def __init__(
        self,
        windows: int,
        columns: int,
        distinct: int,
        sorted_windows: int = 0,
        row_fields: int | None = None,
    ):
        self.windows, self.columns, self.distinct = windows, columns, distinct
        self.sorted_windows = sorted_windows
        self.pool, self.pool_meta = new_pool()
        self.meta = np.zeros(P.M_FIELDS, dtype=np.int64)
        self.meta[[P.M_EFREE, P.M_RFREE, P.M_VFREE]] = -1
        self.ent = np.empty(
            (_MIN_CAP, P.entity_fields(windows, distinct, sorted_windows)), dtype=np.int64
        )
        if row_fields is None:  # every optional field (see passes.row_layout)
            row_fields = P.row_width(P.row_layout(columns, True, True, True, True))
        self.row = np.empty((_MIN_CAP, row_fields), dtype=np.int64)
        self.vrec = np.empty((_MIN_CAP, P.V_FIELDS + distinct), dtype=np.int64)
        self.mark = np.full((_MIN_CAP, distinct), -1, dtype=np.int64)
        self.queue = np.empty((_MIN_CAP, 2), dtype=np.int64)
        self.etab = np.full((_table_size(_MIN_CAP), 2), -1, dtype=np.int64)
        self.vtab = np.full((_table_size(_MIN_CAP), 2), -1, dtype=np.int64)
        self._spares: dict[str, _Spare] = {}
        self._used: dict[str, float] = {}  # per array: its use at the last prepare()
        self._rise: dict[str, float] = {}  # per array: recent rise of its use per prepare()
        self.warm_growths = 0  # growths that took a prepared successor

    def _count(self, field: int) -> int:
        return int(self.meta[field])

    @property
    def entities(self) -> int:
        """Entities held."""
        return self._count(P.M_ENTITIES) - self._count(P.M_EFREE_N)

    @property
    def rows(self) -> int:
        """Rows held."""
        return self._count(P.M_LIVE)

    @property
    def values(self) -> int:
        """(entity, value) records held."""
        return self._count(P.M_VALUES) - self._count(P.M_VFREE_N)

    @property
    def queued(self) -> int:
        """Entries on the due queue."""
        return self._count(P.M_QHEAD) - self._count(P.M_QTAIL)

    def next_due(self) -> int | None:
        """Due ts of the queue's oldest entry (None: the queue is empty)."""
        if not self.queued:
            return None
        return int(self.queue[self._count(P.M_QTAIL) % len(self.queue), 0])

    def copy(self) -> WindowState:
        """A deep copy, without the prepared successors (the copy prepares its own)."""
        spares, self._spares = self._spares, {}
        try:
            return copy.deepcopy(self)
        finally:
            self._spares = spares

    def _use(self) -> dict[str, tuple[int, int]]:
        """Per growable array: (records in use, records at which it must grow)."""
        return {
            "ent": (self.entities, len(self.ent)),
            "row": (self.rows, len(self.row)),
            "vrec": (self.values, len(self.vrec)),
            "mark": (self.values, len(self.mark)),
            "queue": (self.queued, len(self.queue)),
            "etab": (self.entities, len(self.etab) // 2),
            "vtab": (self.values, len(self.vtab) // 2),
        }

    def _new(self, name: str, rows: int, width: int) -> np.ndarray:
        """An array of ``rows`` x ``width`` for ``name``'s growth: its spare when that has
        this shape (its untouched rest filled now), else a fresh one, filled when needed."""
        spare = self._spares.pop(name, None)
        if spare is not None and spare.array.shape == (rows, width):
            spare.touch(rows)  # a filled array must be filled all through
            self.warm_growths += 1
            return spare.array
        fill = _FILL[name]
        out = np.empty((rows, width), dtype=np.int64)
        if fill is not None:
            out[...] = fill
        return out

    def _grow(self, name: str, rows: int) -> None:
        old = getattr(self, name)
        new = self._new(name, rows, old.shape[1])
        new[: len(old)] = old
        setattr(self, name, new)

    def _grown(self, name: str) -> int:
        return grown(*getattr(self, name).shape)

    def _room_for_spare(self, nbytes: int) -> bool:
        """A successor of ``nbytes`` keeps the successors held within ``SPARE_BYTES``."""
        return sum(spare.array.nbytes for spare in self._spares.values()) + nbytes <= SPARE_BYTES

    def _successor(self, name: str) -> int:
        """Records of the array ``name`` grows into when it next grows (at least)."""
        if name in ("etab", "vtab"):  # powers of two
            return 2 * len(getattr(self, name))
        return self._grown("vrec" if name == "mark" else name)

    def _regrow(self, name: str, size: int) -> None:
        setattr(self, name, P.regrow(getattr(self, name), self._new(name, size, 2)))

    def ensure(self, n: int) -> None:
        """Room for ``n`` more rows, entities, values (per column) and queue entries without
        reallocation (free records count as room: records held + n must fit; a new array
        is sized from the high-water mark, where records past it are taken from)."""
        m = self.meta
        if self.entities + n > len(self.ent):
            self._grow("ent", max(self._grown("ent"), int(m[P.M_ENTITIES]) + n))
        if 2 * (self.entities + n) > len(self.etab):
            self._regrow("etab", _table_size(max(len(self.ent), self.entities + n)))
        if self.rows + n > len(self.row):
            self._grow("row", max(self._grown("row"), int(m[P.M_ROWS]) + n))
        self._pool_room(n)
        if self.queued + n > len(self.queue):
            size = max(self._grown("queue"), self.queued + n)
            queue = self._new("queue", size, 2)
            P.ring_copy(self.queue, queue, self.meta[P.M_QTAIL], self.meta[P.M_QHEAD])
            self.queue = queue
        if not self.columns:
            return
        need = n * self.columns
        if self.values + need > len(self.vrec):
            self._grow("vrec", max(self._grown("vrec"), int(m[P.M_VALUES]) + need))
            self._grow("mark", len(self.vrec))  # its successor's size: see _successor
        if 2 * (self.values + need) > len(self.vtab):
            self._regrow("vtab", _table_size(max(len(self.vrec), self.values + need)))

    def _pool_room(self, n: int) -> None:
        """Room past the pool's high-water mark for twice the smallest blocks ``n`` rows
        would open in each sorted window (blocks mostly come from the free lists once the
        state is steady; this is where the pool grows while the state does)."""
        high = int(self.pool_meta[PM_HIGH])
        need = high + 2 * n * self.sorted_windows * (1 << MIN_CLASS)
        if self.sorted_windows and need > len(self.pool):
            pool = np.empty(max(grown(len(self.pool), 1), need))
            pool[:high] = self.pool[:high]
            self.pool = pool

    def grow_pool(self, need: int) -> None:
        """Room past the pool's high-water mark for ``need`` more floats (the compiled pass
        stopped for want of it): the pool doubles, or more when that is not enough."""
        high = int(self.pool_meta[PM_HIGH])
        pool = np.empty(max(2 * len(self.pool), high + need))
        pool[:high] = self.pool[:high]
        self.pool = pool

    def prepare(self, budget_bytes: int | None = None) -> None:
        """Make successors of the arrays that are filling up ready ahead of need, touching
        at most ``budget_bytes`` of their pages. An array gets one once, at the rise of its
        use per call seen lately, it would be full before twice the calls its successor takes
        to touch (plus the two batches growth runs ahead of need); a state that stopped
        growing holds no spare. The budget defaults to ``TOUCH_BYTES``."""
        if budget_bytes is None:
            budget_bytes = TOUCH_BYTES
        for name, (used, limit) in self._use().items():
            rise = max(0.0, used - self._used.get(name, used))
            self._rise[name] = 0.8 * self._rise.get(name, 0.0) + 0.2 * rise
            self._used[name] = used
            current = getattr(self, name)
            width = current.shape[1]
            if width == 0:
                continue
            size = self._successor(name)
            calls = 1 + size * width * 8 // budget_bytes  # to touch a successor
            ahead = (calls + 1) * self._rise[name]
            if name in self._spares:
                if used + 4 * ahead < limit:  # the state stopped growing: give it back
                    del self._spares[name]
            elif used + 2 * ahead >= limit and self._room_for_spare(8 * size * width):
                self._spares[name] = _Spare((size, width), _FILL[name], len(current))
        for spare in self._spares.values():
            width = spare.array.shape[1]
            budget_bytes -= 8 * width * spare.touch(max(1, budget_bytes // (8 * width)))
            if budget_bytes <= 0:
                break

    def evict(self, plan, newest_ns: int) -> int:
        """Drop what no future query can use, as far as the queue is due (see
        :func:`passes.evict`); the number of rows dropped."""
        dropped, self.pool = P.evict(
            newest_ns,
            plan.retention_ns,
            plan.lateness_ns,
            plan.lookback_ns,
            plan.has_previous,
            plan.dist_comp,
            plan.dist_win,
            plan.win_cond,
            plan.win_sorted,
            plan.lay,
            self.etab,
            self.ent,
            self.row,
            self.row.view(np.float64),
            self.vtab,
            self.vrec,
            self.meta,
            self.queue,
            self.pool,
            self.pool_meta,
        )
        return int(dropped)
