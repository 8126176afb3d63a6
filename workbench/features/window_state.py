"""The arrays of one ``by`` column's streaming window state (:mod:`.passes` works on them).

Capacities grow by doubling before a batch needs them (:meth:`WindowState.ensure`), so the
compiled pass never allocates; :meth:`WindowState.compact` drops what no future query can use
and shrinks the arrays to twice what survives.
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
    """Entity records, stored rows and value records with their hash tables, for
    ``windows`` windows, ``columns`` value columns and ``distinct`` distinct features."""

    def __init__(self, windows: int, columns: int, distinct: int):
        self.windows, self.columns, self.distinct = windows, columns, distinct
        self.meta = np.zeros(P.M_FIELDS, dtype=np.int64)
        self.ent = np.empty((_MIN_CAP, P.entity_fields(windows, distinct)), dtype=np.int64)
        self.row = np.empty((_MIN_CAP, P.R_FIELDS + columns), dtype=np.int64)
        self.vrec = np.empty((_MIN_CAP, P.V_FIELDS + distinct), dtype=np.int64)
        self._rebuild()

    def _rebuild(self) -> None:
        """Hash tables from the records' keys, sized for the records' capacity."""
        self.mark = np.full((len(self.vrec), self.distinct), -1, dtype=np.int64)
        self.etab = P.table(self.ent[: self.entities, P.N_KEY], _table_size(len(self.ent)))
        self.vtab = P.value_table(self.vrec, self.values, _table_size(len(self.vrec)))

    @property
    def entities(self) -> int:
        return int(self.meta[P.M_ENTITIES])

    @property
    def rows(self) -> int:
        return int(self.meta[P.M_ROWS])

    @property
    def values(self) -> int:
        return int(self.meta[P.M_VALUES])

    @property
    def row_ts(self) -> np.ndarray:
        """ts of the stored rows (a strided view)."""
        return self.row[: self.rows, P.R_TS]

    def copy(self) -> WindowState:
        return copy.deepcopy(self)

    def ensure(self, n: int) -> None:
        """Room for ``n`` more rows, entities and values (per column) without reallocation."""
        if self.entities + n > len(self.ent):
            self.ent = _grow(self.ent, max(2 * len(self.ent), self.entities + n))
        if 2 * (self.entities + n) > len(self.etab):
            self.etab = P.table(self.ent[: self.entities, P.N_KEY], _table_size(len(self.ent)))
        if self.rows + n > len(self.row):
            self.row = _grow(self.row, max(2 * len(self.row), self.rows + n))
        need = self.values + n * self.columns
        if self.columns and need > len(self.vrec):
            self.vrec = _grow(self.vrec, max(2 * len(self.vrec), need))
            self.mark = _grow(self.mark, len(self.vrec), fill=-1)
        if self.columns and 2 * need > len(self.vtab):
            self.vtab = P.value_table(self.vrec, self.values, _table_size(len(self.vrec)))

    def compact(self, plan, newest_ns: int) -> None:
        """Drop rows older than the retention (see :func:`passes.compact`) and shrink."""
        self.ent, self.row, self.vrec = P.compact(
            newest_ns,
            plan.retention_ns,
            plan.lateness_ns,
            plan.lookback_ns,
            plan.has_previous,
            plan.dist_comp,
            plan.dist_win,
            self.windows,
            self.ent,
            self.row,
            self.vrec,
            self.meta,
        )
        self._rebuild()
