"""Backtest: re-score stored history with a candidate rule set, exactly as the stream would.

The history of ``[start, end)`` is read with COPY (:func:`workbench.storage.transactions.load`)
in time slices, and each slice goes through a :class:`~workbench.scoring.detector.Detector` —
the object the pipeline's detect node uses — so features and scores come from the same code
as the stream's. Features are point-in-time: a row sees only rows strictly before it, and a
label only once its ``label_delay`` has passed (the feature engine's rules, applied to the
labels stored with the history). To give the first rows of the range complete windows, the
history before ``start`` is read too (the rule set's longest look-back, the *warm-up*) and fed
to the feature state without being scored. Stored labels (``labels:`` features) are given to
the features up front; the engine counts each only for rows after its known_at, exactly as
the stream did.

Lists and snoozes: the backtest scores with the maintained lists and the snoozes **as they
are now** — the database's list entries and unlifted snoozes, merged with the list files of
``lists_dir`` as a worker merges them (:func:`current_overlay`) — or with the ones given
(``overlay``; the CLI's ``--lists-from DIR`` and ``--no-snoozes``). A list's past contents
are not replayed. Each snooze is applied by its event-time window, as the stream applies it:
a row whose ``ts`` is before the snooze's ``until`` does not hit the snoozed rule for that
entity, later rows do. So the stored live scores and the backtest agree exactly for history
scored while the same lists and snoozes were in force (:attr:`Backtest.lists_note`).

``frame["analyst_label"]`` is each row's current analyst label (1 fraud, 0 legitimate, -1
none): what analysts concluded in the end, whenever they did — an evaluation truth, kept
apart from the simulator's ``is_fraud`` (:mod:`workbench.analysis.compare`).

History is read in columnar form (binary COPY decoded into Arrow by the ADBC driver, one
connection for every slice; :mod:`workbench.storage.columnar`), and reading the next slice (a
thread: the driver releases the GIL) overlaps scoring the current one. The slices' rows and
features are kept (:mod:`workbench.analysis.feature_cache`): the next backtest of the same
range with the same features — the analyst's next threshold — scores those with its own rules,
lists and snoozes, unless anything the features read has changed since.

>>> # result = backtest("rules/candidate.yaml", "2026-01-01", "2026-01-08", dsn=dsn)
>>> # result.compare(k=100).text()
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from workbench import schema
from workbench.analysis import feature_cache
from workbench.analysis.compare import Comparison, compare
from workbench.analysis.database import database_url
from workbench.errors import ConfigError
from workbench.features.engine import lookback_s as features_lookback
from workbench.pipeline.lists import build_overlay
from workbench.rules import RuleSet, load_rules, parse_rules
from workbench.rules.lists import read_list_files
from workbench.scoring.detector import Detector
from workbench.scoring.evaluate import stored_hits, stored_rule_ids
from workbench.scoring.overlay import Overlay
from workbench.storage import columnar, labels, shared_store, transactions
from workbench.storage import snoozes as snooze_store
from workbench.storage.frames import raw

Progress = Callable[[float, int], None]
"""``progress(fraction_of_time_range_done, rows_read_so_far)``."""

RulesLike = RuleSet | str | Path | Sequence[str | Path] | Mapping[str, str]

SNOOZE_RULE = "each snooze applies to the rows whose event time is before its end"
LIVE_COLUMNS = {"risk_score": "live_score", "band": "live_band", "rule_set_version": "live_version"}
DEFAULT_CHUNK_S = 86_400.0


@dataclass
class Backtest:
    """A candidate rule set's scores over stored history, next to the stored (live) ones.

    ``frame``: one row per stored transaction with ``start <= ts < end``, oldest first: the
    schema columns, ``live_score``/``live_band``/``live_version``/``rule_hits`` (what the
    stream stored) and ``score``/``band`` (the candidate's). ``hits``: boolean frame aligned
    with ``frame``, one column per enabled candidate rule. ``eval_errors``: rule id -> rows
    where evaluating the rule failed. ``overlay``: the maintained lists and snoozes scored
    with, ``lists_source`` where they came from; ``snoozed``: hits the snoozes hid.
    ``from_cache``: the history and its features were those a backtest before kept
    (:mod:`~workbench.analysis.feature_cache`); only the scoring ran.
    """

    ruleset: RuleSet
    start: pd.Timestamp
    end: pd.Timestamp
    frame: pd.DataFrame
    hits: pd.DataFrame
    warmup_rows: int = 0
    eval_errors: dict[str, int] = field(default_factory=dict)
    read_s: float = 0.0
    elapsed_s: float = 0.0
    overlay: Overlay = field(default_factory=Overlay)
    lists_source: str = "none"
    snoozed: int = 0
    from_cache: bool = False

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def throughput(self) -> float:
        """Rows read, featurised and scored per second (warm-up included)."""
        total = self.rows + self.warmup_rows
        return total / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    @property
    def lists_note(self) -> str:
        """How lists and snoozes were treated, in one line (the CLI prints it)."""
        return (
            f"lists and snoozes: {self.lists_source}: {self.overlay.describe()}; "
            f"{SNOOZE_RULE} ({self.snoozed:,} hits snoozed)"
        )

    @property
    def live_note(self) -> str:
        """Which rule-set versions decided the stored (live) rows, in one line (the CLI
        prints it). A backtest scores one rule set over every row: it does not replay a
        challenger's percentage rollout (:mod:`workbench.scoring.rollout`), under which the
        live rows of some cards were decided by the challenger, nor a reload mid-range."""
        counts = self.frame["live_version"].value_counts() if self.rows else pd.Series([])
        if len(counts) <= 1:
            one = "none" if counts.empty else f"version {counts.index[0]}"
            return f"live rows decided by one rule set: {one}"
        shown = ", ".join(f"{v} ({n:,} rows)" for v, n in counts.head(4).items())
        more = f" and {len(counts) - 4} more" if len(counts) > 4 else ""
        return (
            f"live rows decided by {len(counts)} rule-set versions: {shown}{more} (a reload, "
            "or a challenger's rollout, which a backtest does not replay: it scores this one "
            "rule set over every row)"
        )

    def live_hits(self, rule_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Boolean frame of the stored (live) rule hits, one column per rule id (default:
        every rule id that hit in the stored rows), aligned with ``frame``."""
        return stored_hits(self.frame["rule_hits"], rule_ids)

    def compare(
        self,
        *,
        k: int = 100,
        thresholds: Sequence[float] | None = None,
        protocol: str = "daily",
    ) -> Comparison:
        """Candidate against live: a :class:`~workbench.analysis.compare.Comparison`
        (Card Precision@``k`` by ``protocol``: ``daily`` or ``handbook``)."""
        return compare(self, k=k, thresholds=thresholds, protocol=protocol)


def as_ruleset(rules: RulesLike) -> RuleSet:
    """A rule set from a RuleSet, a directory or file path (or several), or ``{name: YAML}``."""
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, Mapping):
        return parse_rules(rules)
    return load_rules(rules)


def load_history(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    dsn: str | None = None,
    conn=None,
) -> pd.DataFrame:
    """Stored transactions of ``[start, end)`` (default: all), oldest first, read with binary
    COPY into Arrow (:func:`workbench.storage.transactions.load`).

    Columns: the batch schema, then ``risk_score``, ``band``, ``rule_hits`` (JSON text),
    ``rule_set_version`` and ``stored_at``. An open range of a database that holds nothing
    yet (a notebook looking while its pipeline starts) is an empty frame, not an error.
    """
    with _connection(conn, dsn) as c:
        if (start is None or end is None) and transactions.time_bounds(c) is None:
            lo = hi = _ts(start if start is not None else "1970-01-01")
        else:
            lo, hi = _range(c, start, end)
        return transactions.load(c, lo.to_pydatetime(), hi.to_pydatetime())


def current_overlay(
    *,
    dsn: str | None = None,
    conn=None,
    lists_dir: str | Path | None = None,
    lists_from: str | Path | None = None,
    snoozes: bool = True,
) -> tuple[Overlay, str]:
    """The maintained lists and snoozes a backtest scores with, and where they came from.

    Default: as a worker reads them now — the database's list entries and unlifted snoozes,
    merged with the list files of ``lists_dir`` (a worker's ``<rules_dir>/lists``).
    ``lists_from``: the lists are the files of that directory alone (the database's entries
    are not read; a refused line is a ConfigError); ``snoozes=False``: nothing is snoozed.
    """
    if lists_from is not None:
        if not Path(lists_from).is_dir():
            raise ConfigError(f"--lists-from: not a directory: '{lists_from}'")
        found, problems = read_list_files(lists_from)
        if problems:
            raise ConfigError(f"--lists-from: {problems[0]}")
    with _connection(conn, dsn) as c:
        if lists_from is None:
            overlay = build_overlay(c, lists_dir)
            source = "as they are now in the database" + (
                f" and {lists_dir}" if lists_dir is not None else ""
            )
            if snoozes:
                return overlay, source
            return Overlay.build(_values(overlay), None), source + ", snoozes left out"
        frame = snooze_store.current(c) if snoozes else None
    source = f"lists from {lists_from}, " + (
        "snoozes as they are now in the database" if snoozes else "snoozes left out"
    )
    return Overlay.build(found, frame), source


def _values(overlay: Overlay) -> dict[str, list[str]]:
    return {name: values.to_pylist() for name, values in overlay.lists.items()}


def lookback_s(ruleset: RuleSet) -> float:
    """How much history before a row its features read: the warm-up a backtest needs."""
    return features_lookback(ruleset.features)


def backtest(
    rules: RulesLike,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    dsn: str | None = None,
    conn=None,
    warmup: bool = True,
    chunk_s: float = DEFAULT_CHUNK_S,
    allowed_lateness_s: float = 3600.0,
    progress: Progress | None = None,
    overlay: Overlay | None = None,
    lists_dir: str | Path | None = None,
    cache: bool = True,
) -> Backtest:
    """Re-score the stored transactions of ``[start, end)`` (default: all) with ``rules``.

    ``conn`` (a connection the caller owns) or ``dsn`` (default: the configured database)
    says where to read. ``warmup=False`` starts the features on empty state at ``start``.
    ``overlay``: the lists and snoozes to score with (default: :func:`current_overlay`,
    with the list files of ``lists_dir``). ``cache``: keep the history read and its features
    for the next backtest of the same range and features, and score those kept by the one
    before when nothing they depend on changed (:mod:`~workbench.analysis.feature_cache`).
    """
    ruleset = as_ruleset(rules)
    began = time.perf_counter()
    source = "as given"
    if overlay is None:
        overlay, source = current_overlay(dsn=dsn, conn=conn, lists_dir=lists_dir)
    with _connection(conn, dsn) as c:
        bounds = transactions.time_bounds(c)
        lo, hi = _range(c, start, end, bounds)
        first = lo
        if warmup and bounds is not None:  # no slices to read before the oldest stored row
            first = max(min(lo, _ts(bounds[0])), lo - pd.Timedelta(seconds=lookback_s(ruleset)))
        slices = [(a, b, False) for a, b in _edges(first, lo, chunk_s)]
        slices += [(a, b, True) for a, b in _edges(lo, hi, chunk_s)]
        detector = Detector(ruleset, allowed_lateness_s=allowed_lateness_s, overlay=overlay)
        book = detector.features.labels
        stored = None
        if book is not None:
            floor = first - pd.Timedelta(book.horizon_ns + book.lateness_ns, unit="ns")
            stored = labels.known(c, hi.to_pydatetime(), ts_from=floor.to_pydatetime())
            detector.features.add_labels(stored)
        rule_ids = [r.id for r in ruleset.enabled_rules]
        frames, hit_blocks, errors = [], [], {}
        warm_rows, read_s, rows, snoozed = 0, [0.0], 0, 0
        span = (hi - first).total_seconds() or 1.0

        def score(history: pd.DataFrame, feats) -> None:
            nonlocal snoozed
            done = detector.scorer.evaluation(history[list(schema.NAMES)], feats)
            frames.append(_result_frame(history, done.scores))
            hit_blocks.append(done.matrix)
            snoozed += done.snoozed
            for rule, n in done.eval_errors.items():
                errors[rule] = errors.get(rule, 0) + n

        key = None
        if cache:
            key = (
                _database(c),
                (first, lo, hi, chunk_s, allowed_lateness_s),
                tuple(ruleset.features),
                _stored(c, first, hi),
                feature_cache.labels_digest(stored),
            )
        kept = feature_cache.get(key) if key is not None else None
        if kept is not None:
            # The same history and features as a backtest before: score them with these rules.
            for piece in kept.slices:
                score(piece.history, piece.features)
                rows += len(piece.history)
            warm_rows = kept.warmup_rows
            rows += warm_rows
            if progress is not None:
                progress(1.0, rows)
        keep: list[feature_cache.CachedSlice] = []
        for (_a, b, scored), history in _prefetch(c, slices if kept is None else [], read_s):
            rows += len(history)
            names = history[list(schema.NAMES)]
            if not scored:
                detector.features.compute(names)
                warm_rows += len(history)
            elif len(history):
                # As the detector evaluates a batch (Detector.evaluate), in two steps so that
                # the features can be kept.
                arrays = detector.features.batch_arrays(names)
                feats = detector.features.compute_arrays(
                    names, defer_maintenance=True, arrays=arrays
                )
                score(history, feats)
                if key is not None:
                    keep.append(feature_cache.CachedSlice(history, _frozen(feats)))
            # As the stream's detect node does between batches.
            detector.maintain()
            if progress is not None:
                progress((b - first).total_seconds() / span, rows)
        # Kept only when nothing was stored into the range or deleted from it while it was
        # read (slice by slice, each in a snapshot of its own): what is kept is then exactly
        # what the key says.
        if key is not None and kept is None and key[3] == _stored(c, first, hi):
            feature_cache.put(key, feature_cache.Entry(tuple(keep), warm_rows))
    frame = (
        pd.concat(frames, ignore_index=True)
        if frames
        else _result_frame(_empty_history(), _empty_scored())
    )
    matrix = np.concatenate(hit_blocks) if hit_blocks else np.zeros((0, len(rule_ids)), bool)
    with _connection(conn, dsn) as c:
        frame["analyst_label"] = analyst_labels(c, frame, lo, hi)
    return Backtest(
        ruleset=ruleset,
        start=lo,
        end=hi,
        frame=frame,
        hits=pd.DataFrame(matrix, columns=rule_ids),
        warmup_rows=warm_rows,
        eval_errors=errors,
        read_s=read_s[0],
        elapsed_s=time.perf_counter() - began,
        overlay=overlay,
        lists_source=source,
        snoozed=snoozed,
        from_cache=kept is not None,
    )


def analyst_labels(conn, frame: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> np.ndarray:
    """int8 per row of ``frame``: its current analyst label (1 fraud, 0 legitimate, -1 none)."""
    cur = labels.current(conn, lo.to_pydatetime(), hi.to_pydatetime())
    out = np.full(len(frame), -1, np.int8)
    if len(cur) and len(frame):
        at = pd.Index(cur["tx_id"]).get_indexer(frame["tx_id"])
        found = at >= 0
        out[found] = (cur["label"].to_numpy(dtype=object)[at[found]] == "fraud").astype(np.int8)
    return out


def live_hits(rule_hits: pd.Series, rule_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Boolean hit columns from stored ``rule_hits`` JSON text
    (:func:`~workbench.scoring.evaluate.stored_hits`)."""
    return stored_hits(rule_hits, rule_ids)


# -- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _connection(conn, dsn: str | None) -> Iterator:
    if conn is not None:
        yield conn
        return
    # The process's pooled store: notebooks calling this repeatedly reuse its connections.
    yield shared_store(dsn or database_url())


def _stored(source, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple:
    return transactions.fingerprint(source, lo.to_pydatetime(), hi.to_pydatetime())


def _database(source) -> tuple:
    """Which database ``source`` reads: server, port and name."""
    with raw(source) as conn:
        return (conn.info.host, conn.info.port, conn.info.dbname)


def _frozen(feats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features to keep, read-only: scoring them again can never change them."""
    out = {}
    for name, values in feats.items():
        values = np.asarray(values)
        if not values.flags.owndata:  # a view of the engine's buffers: those change
            values = values.copy()
        values.setflags(write=False)
        out[name] = values
    return out


def _ts(value: datetime | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _range(conn, start, end, bounds=False) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` as UTC timestamps; open ends from the stored bounds."""
    if bounds is False:
        bounds = transactions.time_bounds(conn) if start is None or end is None else None
    if bounds is None and (start is None or end is None):
        raise ConfigError("no stored transactions to backtest (the database is empty)")
    lo = _ts(start) if start is not None else _ts(bounds[0])
    hi = _ts(end) if end is not None else _ts(bounds[1]) + pd.Timedelta(microseconds=1)
    if hi <= lo:
        raise ConfigError(f"empty time range: start {lo} is not before end {hi}")
    return lo, hi


def _edges(lo: pd.Timestamp, hi: pd.Timestamp, chunk_s: float):
    step = pd.Timedelta(seconds=chunk_s)
    a = lo
    while a < hi:
        b = min(a + step, hi)
        yield a, b
        a = b


def _prefetch(conn, slices, read_s: list[float]):
    """Yield ``(slice, history)`` in order, reading the next slice while the caller works."""

    def read(a: pd.Timestamp, b: pd.Timestamp) -> pd.DataFrame:
        t0 = time.perf_counter()
        frame = transactions.load(conn, a.to_pydatetime(), b.to_pydatetime())
        read_s[0] += time.perf_counter() - t0
        return frame

    if not slices:
        return
    # One reader thread: only it touches the connection while the loop runs. The columnar
    # reader's connection serves every slice (None: the caller's transaction, read on it).
    with (
        columnar.reader_for(conn) as reader,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="backtest-read") as pool,
    ):
        conn = reader if reader is not None else conn
        pending = pool.submit(read, *slices[0][:2])
        for i, item in enumerate(slices):
            history = pending.result()
            if i + 1 < len(slices):
                pending = pool.submit(read, *slices[i + 1][:2])
            yield item, history


def _result_frame(history: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    out = history[[*schema.NAMES, *LIVE_COLUMNS, "rule_hits"]].rename(columns=LIVE_COLUMNS)
    out["score"] = scored["risk_score"].to_numpy()
    out["band"] = scored["band"].astype("str").to_numpy()
    return out


def _empty_history() -> pd.DataFrame:
    frame = schema.empty_batch()
    frame["risk_score"] = pd.Series([], dtype="float64")
    for name in ("band", "rule_set_version", "rule_hits"):
        frame[name] = pd.Series([], dtype="str")
    return frame


def _empty_scored() -> pd.DataFrame:
    return pd.DataFrame(
        {"risk_score": pd.Series([], dtype="float64"), "band": pd.Series([], dtype="str")}
    )


__all__ = [
    "Backtest",
    "analyst_labels",
    "as_ruleset",
    "backtest",
    "current_overlay",
    "live_hits",
    "load_history",
    "lookback_s",
    "stored_rule_ids",
]
