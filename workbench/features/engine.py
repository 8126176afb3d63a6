"""The point-in-time feature engine: typed batches in, one feature column per spec out.

Semantics (strict point-in-time), for a row at time t of entity e (its ``by`` value):

- window aggregates of width w use the rows of e with ``t - w <= ts < t`` — from earlier
  batches (state) or the same batch; never the row itself, rows with the same ts, or later rows;
  with ``ending: E`` those with ``t - E - w <= ts <= t - E``; with ``where`` only the rows that
  meet the condition (evaluated on each row once, when it arrives);
- ``median``/``percentile``: exact, interpolated as ``numpy.percentile`` (NaN when the window
  is empty or holds a missing amount);
- ``time_since_fraud``: hours since e's newest known fraud (:mod:`workbench.features.since`);
- ``fraud_count``/``fraud_rate`` with label delay D use the rows with
  ``t - w <= ts <= t - D`` (a label is known once ``t >= ts + D``; with D = 0, ``ts < t``);
  fraud_rate = frauds / rows with a known label there, NaN when none;
- ``is_new``: no row of e with this row's value of ``of`` in the window (missing value: false);
  ``distinct`` counts known values (missing ones are ignored);
- ``seconds_since_prev``/``distance_km``/``speed_kmh``: from e's last row with ts < t (ties on
  ts: the one that arrived last), if it is at most ``PREVIOUS_LOOKBACK_S`` (90 d) old;
- rows with a missing entity get empty-window values (0, NaN or false) and are not stored;
- ``labels:`` features count stored labels (analysts', chargebacks') known strictly before
  the row, whose transaction is inside the window (:mod:`workbench.features.labels`); the
  caller feeds them with :meth:`FeatureEngine.add_labels` as they appear.

Amounts are fixed-point cents summed in int64 (see :mod:`workbench.features.passes`), which
makes every value independent of how the history is split into batches: streaming a sorted
history in batches of any sizes gives exactly what :func:`compute_features` gives on the
whole of it.

Rows arriving late (ts older than rows already seen) are computed against whatever state is
held: rows up to ``allowed_lateness_s`` late still see complete windows; later ones may miss
evicted rows. Rows never see rows that arrive in later batches.

>>> import pandas as pd
>>> from workbench.features.spec import parse_feature
>>> from workbench.schema import coerce
>>> batch, _ = coerce(pd.DataFrame({"tx_id": ["a", "b", "c"], "card_id": ["k", "k", "k"],
...     "ts": ["2024-01-01 10:00", "2024-01-01 10:05", "2024-01-01 10:05"],
...     "amount": [10.0, 20.0, 30.0]}))
>>> engine = FeatureEngine([parse_feature("n10m", {"agg": "count", "by": "card_id",
...                                                "window": "10m"})])
>>> engine.compute(batch)["n10m"].tolist()
[0.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pandas as pd
import pyarrow as pa

from workbench.features import kernel_cache
from workbench.features.compiled import hash_strings
from workbench.features.group import PREVIOUS_LOOKBACK_S, BatchArrays, Group
from workbench.features.kernels import mix64
from workbench.features.labels import LabelBook
from workbench.features.since import FraudLog
from workbench.features.spec import BUILTIN, MAX_CONDITIONS, PREVIOUS, FeatureSpec

_NS_HOUR = 3600 * 1_000_000_000
_NS_DAY = 24 * _NS_HOUR
_NO_BYTES = np.empty(0, dtype=np.uint8)
PARALLEL_MIN_ROWS = 256
"""Batches smaller than this run their groups one after the other (threads cost more)."""


class FeatureEngine:
    """Computes declared features batch by batch, keeping per-entity window state.

    ``compute(batch)`` gives the features of every row (same index and order as the batch)
    and then adds the batch to the state; ``peek(batch)`` gives the same values without
    changing the state.

    After each batch, rows past the longest window (plus the allowed lateness) are evicted,
    at a cost proportional to the rows that arrived rather than to the state held. A caller
    with idle time between batches passes ``defer_maintenance=True`` and calls
    :meth:`maintain` after handing the batch's results on (before taking the next batch): the
    eviction, and any growth of the state's arrays, then happen off the batch's path; values
    are the same either way. Deferred work that :meth:`maintain` does not pick up is done by
    ``compute`` itself a few batches later, so state stays bounded.
    """

    def __init__(
        self,
        specs: Sequence[FeatureSpec],
        *,
        allowed_lateness_s: float = 3600.0,
        threads: int = 1,
    ):
        """``threads`` > 1: the entity columns' groups of a batch are computed on that many
        threads at once (their compiled passes release the GIL and share no state; values
        are the same). Worth it when the process has cores to spare: CPU time per row is
        the same or a little more, the wall time of a batch less."""
        kernel_cache.ensure_fresh()  # once per process: no stale compiled kernel is loaded
        self.specs = tuple(specs)
        self.threads = max(1, int(threads))
        self._executor: ThreadPoolExecutor | None = None
        self.allowed_lateness_s = float(allowed_lateness_s)
        by: dict[str, list[FeatureSpec]] = {}
        for s in self.specs:
            # stored-label features live in the label book, time_since_fraud in the fraud log
            if s.labels is None and s.agg != "time_since_fraud":
                by.setdefault(s.by, []).append(s)
        self._conditions: dict[str, FeatureSpec] = {}  # where text -> a spec compiled from it
        for s in self.specs:
            if s.where is not None and s.condition is None:
                raise ValueError(
                    f"feature '{s.name}' has a where condition but no compiled condition: "
                    "declare it in a rule file (workbench.rules compiles it)"
                )
            if s.where is not None:
                self._conditions.setdefault(s.where, s)
        if len(self._conditions) > MAX_CONDITIONS:
            raise ValueError(f"at most {MAX_CONDITIONS} distinct where conditions")
        bits = {text: i for i, text in enumerate(self._conditions)}
        # each feature's row in the float or the bool output matrix of a batch
        self._slots: dict[str, tuple[bool, int]] = {}
        self._slot_counts = {False: 0, True: 0}
        for s in self.specs:
            kind = s.type == "bool"
            self._slots[s.name] = (kind, self._slot_counts[kind])
            self._slot_counts[kind] += 1
        self._groups = [
            Group(
                col, group, self.allowed_lateness_s, [self._slots[s.name][1] for s in group], bits
            )
            for col, group in by.items()
        ]
        self._newest: int | None = None
        book = LabelBook(self.specs, self.allowed_lateness_s)
        self.labels: LabelBook | None = book if book.specs else None
        log = FraudLog(self.specs, self.allowed_lateness_s)
        self.frauds: FraudLog | None = log if log.specs else None

    @property
    def state_rows(self) -> int:
        """Rows held in window state, summed over the entity columns (for memory figures)."""
        return sum(g.rows for g in self._groups)

    @property
    def label_sources(self) -> list[str]:
        """The stored-label sources the ``labels:`` features read (empty: none declared)."""
        return self.labels.sources if self.labels is not None else []

    def add_labels(self, rows: pd.DataFrame) -> None:
        """Add stored label rows (columns of ``workbench.storage.labels.FEATURE_COLUMNS``,
        in id order) for the ``labels:`` features; a no-op when none is declared. Add each
        label before the first batch with a row after its ``known_at``."""
        if self.labels is None or rows.empty:
            return
        source = rows["source"].astype("str")
        tx, _ = _text_hash(rows["tx_id"])
        src, _ = _text_hash(source)
        entity = {c: _text_hash(rows[c]) for c in self.labels.columns}
        self.labels.add(
            rows["id"].to_numpy(np.int64),
            mix64(tx, src),
            source.to_numpy(dtype=object),
            _ts_ns(rows["ts"]),
            _ts_ns(rows["known_at"]),
            (rows["label"].astype("str") == "fraud").to_numpy(bool),
            entity,
        )

    def reset(self) -> None:
        """Forget all state (stored labels included)."""
        for g in self._groups:
            g.reset()
        if self.labels is not None:
            self.labels.reset()
        if self.frauds is not None:
            self.frauds.reset()
        self._newest = None

    def reset_windows(self) -> None:
        """Forget the window state (stored labels are kept): before state is rebuilt from
        stored history."""
        for g in self._groups:
            g.reset()
        if self.frauds is not None:  # frauds seen in batches (simulator labels): window state
            self.frauds.reset()
        self._newest = None

    @property
    def lookback_s(self) -> float:
        """How much history before a row its features read (the warm-up of a backtest, the
        history a rebuilt state covers)."""
        return lookback_s(self.specs)

    def compute(self, batch: pd.DataFrame, *, defer_maintenance: bool = False) -> pd.DataFrame:
        """Features of every row of a typed batch (same index/order), then add it to the state.

        With ``defer_maintenance`` the eviction the batch makes due is left to :meth:`maintain`.
        """
        frame = self._run(batch, commit=True, defer=defer_maintenance)
        return pd.DataFrame(frame, index=batch.index)

    def compute_arrays(
        self,
        batch: pd.DataFrame,
        *,
        defer_maintenance: bool = False,
        arrays: BatchArrays | None = None,
    ) -> dict[str, np.ndarray]:
        """What :meth:`compute` gives, as a column name -> array mapping (no DataFrame is
        built: the scoring hot path reads arrays). ``arrays``: the batch as
        :meth:`batch_arrays` gave it for this engine (saves reading it again)."""
        return self._run(batch, commit=True, defer=defer_maintenance, arrays=arrays)

    def batch_arrays(self, batch: pd.DataFrame, like: BatchArrays | None = None) -> BatchArrays:
        """The arrays this engine reads of ``batch``. ``like``: what another engine read of
        the same batch; its times, amounts, labels and column hashes are taken as they are
        (only the hashes it lacks and this engine's ``where`` bits are computed), so a second
        engine over the same stream costs what its own features add."""
        if like is None:
            return self._arrays(batch)
        assert like.n == len(batch), "arrays of another batch"
        hashes, known = dict(like.hashes), dict(like.known)
        for name in self._hashed_columns() - hashes.keys():
            hashes[name], known[name] = _text_hash(batch[name])
        cols = {**like.cols, "cond": self._condition_bits(batch, like.n)}
        return BatchArrays(like.n, like.ts, hashes, known, cols, like.sorted)

    @property
    def maintenance_due(self) -> bool:
        """Deferred state maintenance is pending (:meth:`maintain` would do work)."""
        return any(g.due for g in self._groups)

    @property
    def entity_columns(self) -> set[str]:
        """The ``by`` columns whose window state :meth:`feed` can add rows to."""
        fraud = set(self.frauds.columns) if self.frauds is not None else set()
        return {g.by for g in self._groups} | fraud

    def feed(self, rows: pd.DataFrame, columns: Collection[str]) -> None:
        """Add typed ``rows`` to the window state of the ``columns`` entities only (their
        groups and their simulator-label frauds), computing nothing for the caller: rows a
        worker did not score itself (another worker's, read from the shared store) for the
        entities that span partitions. The other entities' state, the stored labels and the
        watermark of the next :meth:`compute` are left alone: rows of other partitions may be
        ahead in event time, and evicting a card's rows by their time would drop rows its
        own later queries still read. Rows older than a group's newest are inserted at their
        place (the late path of :mod:`.passes`)."""
        wanted = set(columns)
        groups = [g for g in self._groups if g.by in wanted]
        fraud_columns = [c for c in self.frauds.columns if c in wanted] if self.frauds else []
        if not len(rows) or not (groups or fraud_columns):
            return
        arrays = self._arrays(rows)
        values = np.empty((self._slot_counts[False], arrays.n))
        flags = np.empty((self._slot_counts[True], arrays.n), dtype=bool)
        newest = int(arrays.ts.max())
        for g in groups:
            g.compute(arrays, values, flags, True)
            g.commit(max(newest, g.newest_ns or newest))
        if fraud_columns and self.frauds is not None:
            known = {
                c: k if c in fraud_columns else np.zeros_like(k) for c, k in arrays.known.items()
            }
            self.frauds.compute(arrays.ts, arrays.hashes, known, arrays.cols["label"], True)

    def maintain(self) -> bool:
        """Do pending deferred eviction and grow the state's arrays ahead of the next
        batches; returns whether an eviction was due. Cheap when nothing is due. Not
        thread-safe with ``compute``: call it from the thread that computes, between
        batches."""
        done = False
        for g in self._groups:
            done |= g.maintain()
        return done

    def peek(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Same values as :meth:`compute` would give, without changing the state (works on a
        copy of it: costs a copy of the state)."""
        return pd.DataFrame(self._run(batch, commit=False), index=batch.index)

    def _run(
        self,
        batch: pd.DataFrame,
        commit: bool,
        defer: bool = False,
        arrays: BatchArrays | None = None,
    ) -> dict:
        if arrays is None:
            arrays = self._arrays(batch)
        values = np.empty((self._slot_counts[False], arrays.n))
        flags = np.empty((self._slot_counts[True], arrays.n), dtype=bool)
        self._compute_groups(arrays, values, flags, commit)
        if self.labels is not None:
            found = self.labels.compute(arrays.ts, arrays.hashes, arrays.known)
            for name, column in found.items():
                values[self._slots[name][1]] = column
        if self.frauds is not None:
            found = self.frauds.compute(
                arrays.ts, arrays.hashes, arrays.known, arrays.cols["label"], commit
            )
            for name, column in found.items():
                values[self._slots[name][1]] = column
        if commit and arrays.n:
            newest = int(arrays.ts.max())
            self._newest = newest if self._newest is None else max(self._newest, newest)
            for g in self._groups:
                g.commit(self._newest, defer)
            if self.labels is not None:
                self.labels.evict(self._newest)
            if self.frauds is not None:
                self.frauds.evict(self._newest)
        out = {}
        for s in self.specs:
            kind, i = self._slots[s.name]
            out[s.name] = flags[i] if kind else values[i]
        out.update(calendar(arrays.ts))
        return out

    def _compute_groups(
        self, arrays: BatchArrays, values: np.ndarray, flags: np.ndarray, commit: bool
    ) -> None:
        """Each group writes its own rows of ``values``/``flags`` and its own state, so they
        can run on threads (largest first: the others share the remaining threads)."""
        if self.threads == 1 or len(self._groups) < 2 or arrays.n < PARALLEL_MIN_ROWS:
            for g in self._groups:
                g.compute(arrays, values, flags, commit)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="features")
        order = sorted(self._groups, key=lambda g: -g.cost)
        done = [self._executor.submit(g.compute, arrays, values, flags, commit) for g in order]
        wait(done)  # all of them, even when one failed: no pass is left running on the state
        for f in done:
            f.result()

    def _arrays(self, batch: pd.DataFrame) -> BatchArrays:
        n = len(batch)
        ts = _ts_ns(batch["ts"]) if n else np.empty(0, dtype=np.int64)
        hashes, known = {}, {}
        for name in self._hashed_columns():
            hashes[name], known[name] = _text_hash(batch[name])
        fl = np.full((n, 3), np.nan)
        for f, name in enumerate(("amount", "lat", "lon")):
            if name in batch.columns:
                fl[:, f] = batch[name].to_numpy(dtype=np.float64, na_value=np.nan)
        cols = {"fl": fl, "cents": np.rint(np.nan_to_num(fl[:, 0]) * 100.0).astype(np.int64)}
        if "is_fraud" in batch.columns:
            label = batch["is_fraud"].astype("boolean").array
            cols["label"] = label.to_numpy(dtype=np.int64, na_value=-1)
        else:
            cols["label"] = np.full(n, -1, dtype=np.int64)
        cols["cond"] = self._condition_bits(batch, n)
        ordered = bool(n < 2 or (ts[1:] >= ts[:-1]).all())
        return BatchArrays(n=n, ts=ts, hashes=hashes, known=known, cols=cols, sorted=ordered)

    def _hashed_columns(self) -> set[str]:
        """The text columns whose value hashes the features read (entities, ``of`` values)."""
        return {s.by for s in self.specs} | {s.of for s in self.specs if s.of and s.of != "amount"}

    def _condition_bits(self, batch: pd.DataFrame, n: int) -> np.ndarray:
        """Per row, the bits of this engine's ``where`` conditions it meets."""
        bits = np.zeros(n, dtype=np.int64)
        for bit, spec in enumerate(self._conditions.values()):
            met = np.asarray(spec.condition(batch), dtype=bool)
            bits |= met.astype(np.int64) << np.int64(bit)
        return bits


def lookback_s(specs: Sequence[FeatureSpec]) -> float:
    """How much history before a row the features ``specs`` read, in seconds."""
    return max(
        (PREVIOUS_LOOKBACK_S if s.agg in PREVIOUS else s.horizon_s for s in specs), default=0.0
    )


def compute_features(
    specs: Sequence[FeatureSpec], history: pd.DataFrame, *, allowed_lateness_s: float = 3600.0
) -> pd.DataFrame:
    """Features of a whole history at once (offline/backtest): one batch on fresh state.

    Gives exactly the values that streaming the same (sorted) history through
    :meth:`FeatureEngine.compute` in batches would give.
    """
    return FeatureEngine(specs, allowed_lateness_s=allowed_lateness_s).peek(history)


def calendar(ts: np.ndarray) -> dict[str, np.ndarray]:
    """The :data:`~workbench.features.spec.BUILTIN` calendar features of int64 ns UTC times."""
    hour = (ts // _NS_HOUR) % 24
    dow = (ts // _NS_DAY + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    out = {
        "hour": hour.astype(np.float64),
        "day_of_week": dow.astype(np.float64),
        "is_weekend": dow >= 5,
        "is_night": hour < 6,
    }
    assert set(out) == set(BUILTIN)
    return out


def _text_hash(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """uint64 hash of each value's text (compiled, over the Arrow string buffers; equal text
    gives an equal hash whatever the column's dtype or chunking; missing values hash as ""),
    and whether each value is known (not missing)."""
    try:
        data = pa.array(col, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed objects: compare them as text
        data = pa.array(col.astype("str"), from_pandas=True)
    chunks = data.chunks if isinstance(data, pa.ChunkedArray) else [data]
    out = np.empty(len(col), dtype=np.uint64)
    known = np.ones(len(col), dtype=bool)
    start = 0
    for chunk in chunks:
        if chunk.null_count:
            known[start : start + len(chunk)] = chunk.is_valid().to_numpy(zero_copy_only=False)
        if chunk.type != pa.large_string():
            chunk = chunk.cast(pa.large_string())
        _, offsets, text = chunk.buffers()
        first = chunk.offset
        bounds = np.frombuffer(offsets, dtype=np.int64)[first : first + len(chunk) + 1]
        raw = np.frombuffer(text, dtype=np.uint8) if text is not None else _NO_BYTES
        hash_strings(bounds, raw, out, start)
        start += len(chunk)
    return out, known


def _ts_ns(series: pd.Series) -> np.ndarray:
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        series = pd.to_datetime(series, utc=True)
    if series.dtype.unit != "ns":
        series = series.dt.as_unit("ns")
    return series.array.asi8.astype(np.int64, copy=False)
