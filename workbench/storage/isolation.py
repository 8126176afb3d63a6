"""Poison rows: a batch the server refuses for its data is split until the refused rows stand
alone; they become dead letters and every other row is stored.

A batch is written in one transaction, so one bad row (a 3 KB ``card_id`` too big for an
index, an amount out of range) makes the server refuse all of it, and would do so on every
retry. On :class:`~workbench.errors.DataRefused` the refused part is cut in two halves and
each is written on its own (its own transaction, alerts, ``pipeline_stats`` row and NOTIFY),
recursively: for ``k`` bad rows in ``n`` that is O(k log n) writes, and nothing at all on
the usual path, where the batch is written whole. A part of one row that is refused is a
poison row: its record (the transaction's columns, as JSON) goes to ``dead_letters`` with
the SQLSTATE and the server's message as the reason. The poison rows of a batch are
written together, after its good rows, in one last part (with no rows to store).

When every row of a batch of several rows is refused, the rows are not to blame: the
schema or the code is (e.g. a NOT NULL column the writer does not fill). Nothing is
dead-lettered then; :class:`~workbench.errors.SchemaError` is raised to stop the worker.

:class:`Isolation` only decides what to write next; the caller writes (and retries a part
after a transient failure, see :mod:`workbench.pipeline.writer`), so a part committed
before an outage is not written again. Counts conserve: the parts' results add up to
``records == stored + duplicates + dead`` for the batch.

>>> frame = pd.DataFrame({"tx_id": ["a", "b", "c"]})
>>> hits = pd.DataFrame({"row": [0, 2], "rule_id": ["r", "r"], "points": [1.0, 2.0]})
>>> empty = pd.DataFrame({"raw": [], "reason": []})
>>> left, right = halves(ScoredBatch(frame, hits, empty))
>>> list(right.frame["tx_id"]), right.hits["row"].tolist()
(['b', 'c'], [1])
"""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import DataRefused, SchemaError
from workbench.schema import NAMES, empty_dead_letters
from workbench.scoring.result import ScoredBatch
from workbench.storage.writer import BatchWriter, PreparedBatch, WriteResult

Part = ScoredBatch | PreparedBatch


def rows(scored: ScoredBatch, start: int, stop: int, *, extras: bool) -> ScoredBatch:
    """Rows ``start:stop`` of a scored batch, their hits renumbered. ``extras``: the part
    also carries the batch's dead letters and rule-evaluation error counts (give them to
    exactly one part, so they are stored and reported once)."""
    row = scored.hits["row"].to_numpy()
    keep = (row >= start) & (row < stop)
    hits = scored.hits[keep].copy()
    hits["row"] = hits["row"] - start
    evidence = scored.evidence
    if evidence is not None and evidence.num_rows:
        at = evidence.column("row").to_numpy()
        evidence = evidence.filter(pa.array((at >= start) & (at < stop)))
        moved = pc.subtract(evidence.column("row"), pa.scalar(start, pa.int64()))
        evidence = evidence.set_column(0, "row", moved)
    shadow = scored.shadow
    if shadow is not None:  # the challenger's scores of the same rows
        kept = shadow.hits[
            (shadow.hits["row"].to_numpy() >= start) & (shadow.hits["row"].to_numpy() < stop)
        ].copy()
        kept["row"] = kept["row"] - start
        shadow = replace(
            shadow,
            scores=shadow.scores.iloc[start:stop].reset_index(drop=True),
            matrix=shadow.matrix[start:stop],
            hits=kept.reset_index(drop=True),
            unsnoozed=None,
        )
    return replace(
        scored,
        shadow=shadow,
        frame=scored.frame.iloc[start:stop].reset_index(drop=True),
        hits=hits.reset_index(drop=True),
        evidence=evidence,
        dead=scored.dead if extras else empty_dead_letters(),
        eval_errors=dict(scored.eval_errors) if extras else {},
    )


def halves(scored: ScoredBatch) -> tuple[ScoredBatch, ScoredBatch]:
    """The first and second half of a batch's rows; the dead letters go with the first."""
    middle = len(scored.frame) // 2
    return (
        rows(scored, 0, middle, extras=True),
        rows(scored, middle, len(scored.frame), extras=False),
    )


def poison_letters(frame: pd.DataFrame, error: DataRefused) -> pd.DataFrame:
    """Dead letters for refused rows: each record's transaction columns as JSON (like the
    schema's own dead letters), the reason naming the SQLSTATE and the server's message."""
    columns = [name for name in NAMES if name in frame.columns]
    # Per-row JSON is fine here: only rows known to be bad pay for it.
    records = frame[columns].astype(object).where(frame[columns].notna(), None)
    raw = [json.dumps(r, default=str, ensure_ascii=False) for r in records.to_dict("records")]
    reason = f"refused by the database (SQLSTATE {error.sqlstate}): {error.reason}"
    return pd.DataFrame(
        {"raw": pd.Series(raw, dtype="str"), "reason": pd.Series([reason] * len(raw), dtype="str")}
    )


class Isolation:
    """The parts of one batch still to write, split further each time one is refused.

    Usage: ``while not iso.done: part = iso.next(); try: iso.stored(write(part)) except
    DataRefused as e: iso.refused(e)``; then ``iso.result`` is the batch's total.
    """

    def __init__(self, batch: Part) -> None:
        self.batch = batch
        self.scored = batch.scored if isinstance(batch, PreparedBatch) else batch
        self._pending: list[Part] = [batch]  # a stack: the next part is last
        self._poison: list[pd.DataFrame] = []
        self._poison_queued = False
        self.refusals = 0
        self.poison_rows = 0
        self.parts_written = 0
        self.result = WriteResult(0, 0, 0, 0, 0)

    @property
    def done(self) -> bool:
        return not self._pending and (self._poison_queued or not self._poison)

    def next(self) -> Part:
        """The part to write now."""
        if not self._pending and self._poison and not self._poison_queued:
            self._poison_queued = True
            dead = pd.concat(self._poison, ignore_index=True)
            empty = rows(self.scored, 0, 0, extras=False)
            self._pending.append(self._like(self.batch, replace(empty, dead=dead)))
        return self._pending[-1]

    def stored(self, result: WriteResult) -> None:
        """The part from :meth:`next` was written with ``result``."""
        self._pending.pop()
        self.parts_written += 1
        total = self.result
        self.result = WriteResult(
            total.stored + result.stored,
            total.duplicates + result.duplicates,
            total.dead + result.dead,
            total.alerts_opened + result.alerts_opened,
            total.alerts_attached + result.alerts_attached,
            result.summary,  # the last part's NOTIFY; each part sent its own
        )

    def refused(self, error: DataRefused) -> None:
        """The part from :meth:`next` was refused for its data: split it, or set its row
        aside as poison. Raises ``error`` when the part has no row left to blame (only dead
        letters, refused), and :class:`SchemaError` when every row of the batch was."""
        self.refusals += 1
        part = self._pending.pop()
        scored = part.scored if isinstance(part, PreparedBatch) else part
        n = len(scored.frame)
        if n == 0:
            raise error
        if n == 1:
            self._poison.append(poison_letters(scored.frame, error))
            self.poison_rows += 1
            if len(scored.dead) or scored.eval_errors:
                # The row carried the batch's dead letters: they still need writing.
                self._pending.append(self._like(part, rows(scored, 0, 0, extras=True)))
            total = len(self.scored.frame)
            if self.poison_rows == total and total > 1:
                raise SchemaError(
                    f"every one of the {total} rows of a batch was refused "
                    f"(SQLSTATE {error.sqlstate}): {error}"
                )
            return
        left, right = halves(scored)
        self._pending += [self._like(part, right), self._like(part, left)]

    @staticmethod
    def _like(part: Part, scored: ScoredBatch) -> Part:
        return part.like(scored) if isinstance(part, PreparedBatch) else scored


def write_isolating(conn, batch: Part, **options) -> WriteResult:
    """:func:`~workbench.storage.writer.write_batch`, isolating refused rows (no retries on
    transient failures: those are raised). ``conn``: a psycopg connection or a
    :class:`~workbench.storage.writer.BatchWriter`; ``options`` as for ``write_batch``."""
    writer = conn if isinstance(conn, BatchWriter) else BatchWriter(conn)
    iso = Isolation(batch)
    while not iso.done:
        part = iso.next()
        try:
            result = writer.write(part, **options)
        except DataRefused as error:
            iso.refused(error)
            continue
        iso.stored(result)
    return iso.result
