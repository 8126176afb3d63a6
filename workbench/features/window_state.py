"""The arrays of one ``by`` column's streaming window state (:mod:`.passes` works on them).

Records live in arrays indexed by record number, with free lists for the records the
eviction (:func:`passes.evict`) gives back, so a record never moves: capacities grow by
doubling before a batch needs them (:meth:`WindowState.ensure`), and only while the state
itself grows (when the stream starts, or its rate rises); a state that has reached its
retention reuses freed records instead. The due queue is a ring of (due ts, entity) pairs.
"""

from __future__ import annotations

import copy

import numpy as np

from workbench.features import passes as P

_MIN_CAP = 64


def _table_size(entries: int) -> int:
    """Buckets for a hash table of ``entries`` (load factor at most 1/2, a power of two)."""
    return max(_MIN_CAP, 1 << int(2 * max(entries, 1) - 1).bit_length())


def _grow(a: np.ndarray, rows: int, fill: int | None = None) -> np.ndarray:
    out = np.empty((rows, *a.shape[1:]), dtype=a.dtype)
    if fill is not None:
        out[len(a) :] = fill
    out[: len(a)] = a
    return out


class WindowState:
    """Entity records, stored rows and value records with their hash tables, and the due
    queue, for ``windows`` windows, ``columns`` value columns and ``distinct`` distinct
    features."""

    def __init__(self, windows: int, columns: int, distinct: int):
        self.windows, self.columns, self.distinct = windows, columns, distinct
        self.meta = np.zeros(P.M_FIELDS, dtype=np.int64)
        self.meta[[P.M_EFREE, P.M_RFREE, P.M_VFREE]] = -1
        self.ent = np.empty((_MIN_CAP, P.entity_fields(windows, distinct)), dtype=np.int64)
        self.row = np.empty((_MIN_CAP, P.R_FIELDS + columns), dtype=np.int64)
        self.vrec = np.empty((_MIN_CAP, P.V_FIELDS + distinct), dtype=np.int64)
        self.mark = np.full((_MIN_CAP, distinct), -1, dtype=np.int64)
        self.queue = np.empty((_MIN_CAP, 2), dtype=np.int64)
        self.etab = P.regrow(np.empty((0, 2), dtype=np.int64), _table_size(_MIN_CAP))
        self.vtab = P.regrow(np.empty((0, 2), dtype=np.int64), _table_size(_MIN_CAP))

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
        return int(self.queue[self._count(P.M_QTAIL) & (len(self.queue) - 1), 0])

    def copy(self) -> WindowState:
        return copy.deepcopy(self)

    def ensure(self, n: int) -> None:
        """Room for ``n`` more rows, entities, values (per column) and queue entries without
        reallocation (free records count as room)."""
        m = self.meta
        if m[P.M_ENTITIES] + n - m[P.M_EFREE_N] > len(self.ent):
            self.ent = _grow(self.ent, max(2 * len(self.ent), int(m[P.M_ENTITIES]) + n))
        if 2 * (self.entities + n) > len(self.etab):
            size = _table_size(max(len(self.ent), self.entities + n))
            self.etab = P.regrow(self.etab, size)
        if m[P.M_ROWS] + n - m[P.M_RFREE_N] > len(self.row):
            self.row = _grow(self.row, max(2 * len(self.row), int(m[P.M_ROWS]) + n))
        if self.queued + n > len(self.queue):
            self._grow_queue(self.queued + n)
        if not self.columns:
            return
        need = n * self.columns
        if m[P.M_VALUES] + need - m[P.M_VFREE_N] > len(self.vrec):
            self.vrec = _grow(self.vrec, max(2 * len(self.vrec), int(m[P.M_VALUES]) + need))
            self.mark = _grow(self.mark, len(self.vrec), fill=-1)
        if 2 * (self.values + need) > len(self.vtab):
            size = _table_size(max(len(self.vrec), self.values + need))
            self.vtab = P.regrow(self.vtab, size)

    def _grow_queue(self, need: int) -> None:
        """A ring at least twice as large, entries kept at their (monotonic) positions."""
        size = max(2 * len(self.queue), 1 << (need - 1).bit_length())
        queue = np.empty((size, 2), dtype=np.int64)
        P.ring_copy(self.queue, queue, self.meta[P.M_QTAIL], self.meta[P.M_QHEAD])
        self.queue = queue

    def evict(self, plan, newest_ns: int) -> int:
        """Drop what no future query can use, as far as the queue is due (see
        :func:`passes.evict`); the number of rows dropped."""
        return int(
            P.evict(
                newest_ns,
                plan.retention_ns,
                plan.lateness_ns,
                plan.lookback_ns,
                plan.has_previous,
                plan.dist_comp,
                plan.dist_win,
                self.windows,
                self.etab,
                self.ent,
                self.row,
                self.vtab,
                self.vrec,
                self.meta,
                self.queue,
            )
        )
