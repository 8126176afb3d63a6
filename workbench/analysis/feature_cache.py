"""Features of backtested history, kept for the next backtest of the same range.

An analyst tries a threshold, backtests, tries another: the history read and its features are
the same each time; only the rules differ. A backtest keeps each scored slice (the rows as
read, and the point-in-time features computed for them) here, under a key that says
everything the features depend on; the next backtest with the same key scores the kept
features with its own rules, lists and snoozes, and neither reads the history nor computes a
feature. The rules never enter the key: scoring always runs.

The key:

- the database (server, port, database name) and the slices: the warm-up start, ``[start,
  end)``, the slice length;
- the features, as the rule set declares them (equal specs are equal features, as the
  stream's hot reload decides) and the allowed lateness;
- what was stored: the number of stored transactions of the range (warm-up included), the
  newest ``stored_at`` among them and the sum of a hash of their ids, read in one query
  (:func:`workbench.storage.transactions.fingerprint`). Stored transactions are written once
  and never updated; a row stored late into the range, a retention drop or a deletion
  changes the count, the newest ``stored_at`` or the hash;
- the labels the features were given (a hash of the frame), when they read labels.

What is stored is fingerprinted before the history is read and again after it: a range that
a worker stored into (or a retention deleted from) while it was read is not kept.

Bounded: at most :data:`MAX_BYTES` are kept in the process (the newest backtests first; one
that alone is larger is not kept), and :func:`clear` empties it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["MAX_BYTES", "CachedSlice", "Entry", "clear", "get", "labels_digest", "put", "size"]

MAX_BYTES = 512 * 2**20
"""What the process keeps at most (history rows and their features)."""


@dataclass(frozen=True)
class CachedSlice:
    """One scored slice of a backtest: the rows as read and their features."""

    history: pd.DataFrame
    features: Mapping[str, np.ndarray]

    @property
    def nbytes(self) -> int:
        rows = int(self.history.memory_usage(index=False, deep=False).sum())
        return rows + sum(int(np.asarray(a).nbytes) for a in self.features.values())


@dataclass(frozen=True)
class Entry:
    """A backtest's scored slices, and how many warm-up rows its features were given."""

    slices: tuple[CachedSlice, ...]
    warmup_rows: int

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.slices)


_lock = threading.Lock()
_kept: OrderedDict[Hashable, tuple[Entry, int]] = OrderedDict()


def get(key: Hashable) -> Entry | None:
    """What is kept under ``key``, or None."""
    with _lock:
        found = _kept.get(key)
        if found is None:
            return None
        _kept.move_to_end(key)
        return found[0]


def put(key: Hashable, entry: Entry) -> bool:
    """Keep ``entry`` under ``key`` (False when it alone exceeds :data:`MAX_BYTES`), giving
    up the least recently used entries to stay within it."""
    nbytes = entry.nbytes
    with _lock:
        _kept.pop(key, None)
        if nbytes > MAX_BYTES:
            return False
        while _kept and _size() + nbytes > MAX_BYTES:
            _kept.popitem(last=False)
        _kept[key] = (entry, nbytes)
    return True


def size() -> int:
    """Bytes kept now."""
    with _lock:
        return _size()


def _size() -> int:
    return sum(n for _, n in _kept.values())


def clear() -> None:
    """Keep nothing (the next backtest reads and computes again)."""
    with _lock:
        _kept.clear()


def labels_digest(frame: pd.DataFrame | None) -> tuple[int, int] | None:
    """A key part for the labels given to the features: their count and a hash of them."""
    if frame is None:
        return None
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return len(frame), int(hashed.sum(dtype=np.uint64))
