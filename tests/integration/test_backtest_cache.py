"""The backtest's feature cache against a real PostgreSQL: a second backtest of the same
range and features scores the kept features with its own rules and gives what a backtest
without the cache gives; anything the features depend on changing (a row stored late, a row
deleted, a label, other features) is never served from the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import backtest, feature_cache
from workbench.auth.roles import Identity, Role
from workbench.dashboard.actions import Actions
from workbench.rules import parse_rules
from workbench.schema import coerce
from workbench.scoring.detector import Detector
from workbench.scoring.result import ScoredBatch
from workbench.storage import connect, write_batch

pytestmark = pytest.mark.integration

FEATURES = """
bands: {medium: 40, high: 70}
alert: {min_band: high, dedup: 10m}
features:
  term_analyst_fraud: {agg: fraud_count, by: terminal_id, window: 1d, labels: analyst}
  card_tx_1h: {agg: count, by: card_id, window: 1h}
"""
RULES = {
    "r.yaml": FEATURES
    + """
rules:
  - id: big
    when: amount > 450
    score: 75
  - id: busy_card
    when: card_tx_1h >= 3
    score: 45
  - id: flagged_terminal
    when: term_analyst_fraud >= 1
    score: 30
"""
}
# The same features, other thresholds and points.
TIGHTER = {
    "r.yaml": FEATURES
    + """
rules:
  - id: big
    when: amount > 300
    score: 80
  - id: busy_card
    when: card_tx_1h >= 2
    score: 50
"""
}
# One feature fewer.
OTHER_FEATURES = {
    "r.yaml": RULES["r.yaml"]
    .replace("  card_tx_1h: {agg: count, by: card_id, window: 1h}\n", "")
    .replace("  - id: busy_card\n    when: card_tx_1h >= 3\n    score: 45\n", "")
}


def _history(n: int, seed: int, offset: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.integers(0, 2 * 86400, n))
    raw = pd.DataFrame(
        {
            "tx_id": [f"s{offset + i:05d}" for i in range(n)],
            "ts": pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(secs, unit="s"),
            "card_id": [f"c{k}" for k in rng.integers(0, 150, n)],
            "terminal_id": [f"t{k}" for k in rng.integers(0, 12, n)],
            "amount": np.round(rng.uniform(1, 500, n), 2),
        }
    )
    batch, dead = coerce(raw)
    assert dead.empty
    return batch


def _store(dsn: str, history: pd.DataFrame) -> None:
    detector = Detector(parse_rules(RULES))
    with connect(dsn) as conn:
        for start in range(0, len(history), 500):
            frame = history.iloc[start : start + 500].reset_index(drop=True)
            scored, hits, _ = detector.score_frame(frame)
            write_batch(
                conn, ScoredBatch(frame=scored, hits=hits, dead=pd.DataFrame()),
                alert_min_band="High", alert_dedup_s=600.0,
            )  # fmt: skip
            detector.maintain()


def _same(got, want) -> None:
    """A backtest served from the cache gives what one that reads and computes gives."""
    assert got.from_cache and not want.from_cache
    pd.testing.assert_frame_equal(got.frame, want.frame)
    pd.testing.assert_frame_equal(got.hits, want.hits)
    assert got.eval_errors == want.eval_errors
    assert got.warmup_rows == want.warmup_rows
    assert got.snoozed == want.snoozed


START, END = "2026-02-01T12:00:00Z", "2026-02-03T00:00:00Z"  # a warm-up of half a day


def test_a_second_backtest_scores_the_kept_features_with_its_own_rules(db_dsn):
    _store(db_dsn, _history(2000, seed=5))
    feature_cache.clear()
    first = backtest(RULES, START, END, dsn=db_dsn, chunk_s=6 * 3600)
    assert not first.from_cache and first.rows > 1000 and first.warmup_rows > 0
    assert feature_cache.size() > 0

    tighter = backtest(TIGHTER, START, END, dsn=db_dsn, chunk_s=6 * 3600)
    _same(tighter, backtest(TIGHTER, START, END, dsn=db_dsn, chunk_s=6 * 3600, cache=False))
    # not vacuous: the other rules scored otherwise
    assert not np.array_equal(tighter.frame["score"], first.frame["score"])
    assert list(tighter.hits.columns) == ["big", "busy_card"]

    # The first rules again, from the cache: what the stream stored.
    again = backtest(RULES, START, END, dsn=db_dsn, chunk_s=6 * 3600)
    assert again.from_cache
    assert np.array_equal(again.frame["score"], again.frame["live_score"])
    pd.testing.assert_frame_equal(again.frame, first.frame)

    # Other features, another range, other slices, another lateness: read and computed.
    for other in (
        backtest(OTHER_FEATURES, START, END, dsn=db_dsn, chunk_s=6 * 3600),
        backtest(RULES, START, "2026-02-02T18:00:00Z", dsn=db_dsn, chunk_s=6 * 3600),
        backtest(RULES, START, END, dsn=db_dsn, chunk_s=3 * 3600),
        backtest(RULES, START, END, dsn=db_dsn, chunk_s=6 * 3600, allowed_lateness_s=60.0),
    ):
        assert not other.from_cache


def test_what_the_features_read_changing_is_never_served_from_the_cache(db_dsn):
    _store(db_dsn, _history(2000, seed=8))
    feature_cache.clear()
    kw = {"dsn": db_dsn, "chunk_s": 6 * 3600}
    assert not backtest(RULES, START, END, **kw).from_cache
    assert backtest(RULES, START, END, **kw).from_cache

    # A row stored late into the range.
    late = _history(1, seed=99, offset=50_000)
    late["ts"] = pd.Timestamp("2026-02-02T06:00:00Z")
    _store(db_dsn, late)
    got = backtest(RULES, START, END, **kw)
    assert not got.from_cache and "s50000" in set(got.frame["tx_id"])
    _same(backtest(RULES, START, END, **kw), backtest(RULES, START, END, cache=False, **kw))

    # The late row deleted: what is stored is what it was, and so is what the cache holds.
    with connect(db_dsn) as conn:
        conn.execute("DELETE FROM transactions WHERE tx_id = 's50000'")
    _same(backtest(RULES, START, END, **kw), backtest(RULES, START, END, cache=False, **kw))

    # A row of the range deleted (a retention drop deletes many).
    with connect(db_dsn) as conn:
        gone = conn.execute(
            "DELETE FROM transactions WHERE ts > %s RETURNING tx_id", ("2026-02-02T23:00:00Z",)
        ).fetchall()
    got = backtest(RULES, START, END, **kw)
    assert gone and not got.from_cache
    assert not {g[0] for g in gone} & set(got.frame["tx_id"])

    # An analyst's verdict: a label the labels: feature reads.
    with connect(db_dsn) as conn:
        alert_id = conn.execute(
            "SELECT id FROM alerts WHERE ts < %s ORDER BY ts LIMIT 1", ("2026-02-02",)
        ).fetchone()[0]
    Actions(Identity("ana", Role.ANALYST), db_dsn).dispose(alert_id, "confirmed_fraud")
    # (known at the newest stored time, it counts for no row of the range: the key holds the
    # labels given to the features, not only those that changed a value)
    assert not backtest(RULES, START, END, **kw).from_cache
    _same(backtest(RULES, START, END, **kw), backtest(RULES, START, END, cache=False, **kw))


def test_the_cache_keeps_at_most_its_bound_newest_first(monkeypatch):
    feature_cache.clear()
    frame = pd.DataFrame({"a": np.zeros(1000)})  # 8,000 bytes
    feats = {"f": np.zeros(1000)}  # 8,000 bytes

    def entry() -> feature_cache.Entry:
        return feature_cache.Entry((feature_cache.CachedSlice(frame, feats),), 0)

    monkeypatch.setattr(feature_cache, "MAX_BYTES", 40_000)
    assert feature_cache.put("one", entry()) and feature_cache.put("two", entry())
    assert feature_cache.get("one") is not None  # "one" is now the most recently used
    assert feature_cache.put("three", entry())
    assert feature_cache.size() == 32_000
    assert feature_cache.get("two") is None  # the least recently used went
    assert feature_cache.get("one") is not None and feature_cache.get("three") is not None
    big = feature_cache.Entry((feature_cache.CachedSlice(frame, {"f": np.zeros(9000)}),), 0)
    assert not feature_cache.put("big", big)  # alone larger than the bound: not kept
    assert feature_cache.get("big") is None and feature_cache.size() == 32_000
    feature_cache.clear()
    assert feature_cache.size() == 0


def test_a_range_written_to_while_it_is_read_is_not_kept(db_dsn):
    _store(db_dsn, _history(2000, seed=9))
    feature_cache.clear()
    written = []

    def store_one_late_row(_fraction: float, _rows: int) -> None:
        if not written:  # after the first slice: a row stored into the range, as a worker would
            late = _history(1, seed=98, offset=60_000)
            late["ts"] = pd.Timestamp("2026-02-01T13:00:00Z")
            _store(db_dsn, late)
            written.append(1)

    kw = {"dsn": db_dsn, "chunk_s": 6 * 3600}
    assert not backtest(RULES, START, END, progress=store_one_late_row, **kw).from_cache
    assert written and feature_cache.size() == 0  # read from a moving range: not kept
    assert not backtest(RULES, START, END, **kw).from_cache
    assert feature_cache.size() > 0
    _same(backtest(RULES, START, END, **kw), backtest(RULES, START, END, cache=False, **kw))
