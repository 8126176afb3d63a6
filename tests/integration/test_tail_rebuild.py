"""A rebuild and the tail of other workers' commits, in process on a real PostgreSQL.

The rebuild reads the stored history in one snapshot and the tail goes on from exactly
that snapshot: a batch committed before it is fed once (by the rebuild), one that started
before it and committed after it once (by the tail), none twice; the terminal's rows of
other partitions reach the terminal feature only, never the card features.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import psycopg
import pytest

from tests.integration.test_committed_cursor import T0, begin_batch
from workbench.pipeline.rebuild import StateRebuild
from workbench.pipeline.tail import CommittedTail
from workbench.rules import parse_rules
from workbench.schema import coerce
from workbench.scoring.detector import Detector
from workbench.sources.partitioner import partition_of
from workbench.storage.partitions import ensure_days

pytestmark = pytest.mark.integration

RULES = """\
features:
  term_1d: {agg: count, by: terminal_id, window: 1d}
  card_1d: {agg: count, by: card_id, window: 1d}
rules: [{id: r, when: term_1d >= 0 and card_1d >= 0, score: 1}]
"""


def card_in(partition: int, prefix: str) -> str:
    names = [f"{prefix}-{i}" for i in range(64)]
    return next(n for n, p in zip(names, partition_of(names, 2), strict=True) if p == partition)


def commit(dsn: str, worker: str, ids: list[str], minute: int, card: str) -> None:
    with begin_batch(dsn, worker, ids, T0 + timedelta(minutes=minute), card) as conn:
        conn.commit()


def probe(card: str, minute: int) -> pd.DataFrame:
    frame, _ = coerce(pd.DataFrame({
        "tx_id": [f"probe-{minute}"], "ts": [T0 + timedelta(minutes=minute)],
        "card_id": [card], "terminal_id": ["term-1"], "amount": [1.0],
    }))  # fmt: skip
    return frame


def test_rebuild_then_tail_feed_every_batch_once(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        ensure_days(conn, [date(2026, 3, 2)])
    mine, theirs = card_in(0, "mine"), card_in(1, "theirs")
    commit(db_dsn, "b", ["b1", "b2", "b3"], 0, theirs)  # before the rebuild
    commit(db_dsn, "b", ["m1"], 1, mine)  # this worker's partition, earlier owner
    slow = begin_batch(db_dsn, "b", ["s1", "s2"], T0 + timedelta(minutes=2), theirs)

    detector = Detector(parse_rules({"r.yaml": RULES}), allowed_lateness_s=86400)
    rebuild = StateRebuild(db_dsn, 2)
    tail = rebuild.tail = CommittedTail(db_dsn, 2, "a")
    assert rebuild.rebuild(detector, [0]) == 4  # every row (the terminal's), 1 of them mine
    assert list(rebuild.known) == ["m1"]  # what may come again in this worker's batches

    slow.commit()  # started before the rebuild's snapshot, committed after it
    slow.close()
    commit(db_dsn, "b", ["b4"], 3, theirs)
    commit(db_dsn, "a", ["a1"], 4, theirs)  # this worker's own batch (an earlier partition)
    commit(db_dsn, "b", ["m2"], 5, mine)  # its own partition: its stream brings it
    assert tail.feed(detector, probe(mine, 10)) == 3  # s1, s2, b4
    assert tail.feed(detector, probe(mine, 11)) == 0  # nothing twice

    got = detector.features.peek(probe(mine, 12))
    assert got["term_1d"].tolist() == [7.0]  # b1-b3, m1 (rebuild); s1, s2, b4 (tail)
    assert got["card_1d"].tolist() == [1.0]  # m1 only: never another partition's card
    other = detector.features.peek(probe(theirs, 12))
    assert other["card_1d"].tolist() == [0.0]
