"""Stream == backtest with a feature from analyst labels: batches scored as the worker does
(the label feed first, then features and rules, then the write), with dispositions made
between batches; a backtest of the stored history gives exactly the stored scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import backtest
from workbench.auth.roles import Identity, Role
from workbench.dashboard.actions import Actions
from workbench.pipeline.labels import LabelFeed
from workbench.rules import parse_rules
from workbench.schema import coerce
from workbench.scoring.detector import Detector
from workbench.scoring.result import ScoredBatch
from workbench.storage import connect, write_batch

pytestmark = pytest.mark.integration

RULES = {
    "r.yaml": """
bands: {medium: 40, high: 70}
alert: {min_band: high, dedup: 10m}
features:
  term_analyst_fraud: {agg: fraud_count, by: terminal_id, window: 1d, labels: analyst}
  term_analyst_rate: {agg: fraud_rate, by: terminal_id, window: 1d, labels: analyst}
rules:
  - id: big
    when: amount > 450
    score: 75
    examples: {match: [{amount: 451}], no_match: [{amount: 10}]}
  - id: hot_terminal
    when: term_analyst_fraud >= 1 and term_analyst_rate > 0.4
    score: 72
    examples:
      match: [{term_analyst_fraud: 2, term_analyst_rate: 0.5}]
      no_match: [{term_analyst_fraud: 0, term_analyst_rate: null}]
"""
}


def _history(n: int = 3000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.integers(0, 2 * 86400, n))
    raw = pd.DataFrame(
        {
            "tx_id": [f"s{i:05d}" for i in range(n)],
            "ts": pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(secs, unit="s"),
            "card_id": [f"c{k}" for k in rng.integers(0, 300, n)],
            "terminal_id": [f"t{k}" for k in rng.integers(0, 12, n)],
            "amount": np.round(rng.uniform(1, 500, n), 2),
        }
    )
    batch, dead = coerce(raw)
    assert dead.empty
    return batch


def test_stream_with_dispositions_between_batches_equals_backtest(db_dsn):
    ruleset = parse_rules(RULES)
    detector = Detector(ruleset)
    feed = LabelFeed(db_dsn)
    actions = Actions(Identity("ana", Role.ANALYST), db_dsn)
    history = _history()
    verdicts = ["confirmed_fraud", "confirmed_fraud", "false_positive"]
    disposed = 0
    with connect(db_dsn) as conn:
        for k, start in enumerate(range(0, len(history), 150)):
            frame = history.iloc[start : start + 150].reset_index(drop=True)
            feed.feed(detector, frame)  # as the detect node does before scoring
            scored, hits, errors = detector.score_frame(frame)
            assert not errors
            write_batch(
                conn, ScoredBatch(frame=scored, hits=hits, dead=pd.DataFrame()),
                alert_min_band="High", alert_dedup_s=600.0,
            )  # fmt: skip
            detector.maintain()
            if k % 2 == 1:  # an analyst closes the two newest open alerts
                rows = conn.execute(
                    "SELECT id FROM alerts WHERE status = 'open' ORDER BY id DESC LIMIT 2"
                ).fetchall()
                for (alert_id,) in rows:
                    actions.dispose(alert_id, verdicts[disposed % 3])
                    disposed += 1
    assert disposed > 10 and feed.read > 10
    result = backtest(RULES, dsn=db_dsn, chunk_s=6 * 3600)
    frame = result.frame
    assert len(frame) == len(history)
    assert np.array_equal(frame["score"].to_numpy(), frame["live_score"].to_numpy())
    live = result.live_hits(list(result.hits.columns))
    assert (live.to_numpy() == result.hits.to_numpy()).all()
    assert result.hits["hot_terminal"].sum() > 0  # not vacuous: analyst labels changed scores
    # and the backtest names the analysts' verdicts as their own truth
    truths = result.compare().truths.set_index(["scoring", "truth"])
    assert truths.loc[("live", "vs analyst labels"), "labelled"] > 0


GRAPH_RULES = {
    "g.yaml": """
bands: {medium: 40, high: 70}
alert: {min_band: high, dedup: 10m}
features:
  term_analyst_fraud: {agg: fraud_count, by: terminal_id, window: 1d, labels: analyst}
rules:
  - id: flagged_terminal
    when: term_analyst_fraud >= 1
    score: 75
    examples: {match: [{term_analyst_fraud: 1}], no_match: [{term_analyst_fraud: 0}]}
"""
}
SIM = {"seed": 3, "sim_customers": 300, "sim_terminals": 40, "batch_rows": 200,
       "rate": 1000.0, "sim_speedup": 3600.0}  # fmt: skip


def test_the_worker_graph_reads_labels_before_scoring(db_dsn):
    """The real streaming graph (Pipeline): a label stored before the run, on a terminal of
    the simulator, makes exactly that terminal's rows hit; a backtest agrees."""
    import asyncio

    from workbench.pipeline.graph import Pipeline
    from workbench.pipeline.writer import RetryingWriter
    from workbench.sources.simulator import Simulator

    preview = Simulator(**SIM).next_batch().frame
    terminal = preview["terminal_id"].value_counts().index[0]
    start = preview["ts"].min()
    with connect(db_dsn) as conn:  # the schema owner: a label as a disposition writes it
        conn.execute(
            "INSERT INTO labels (tx_id, ts, card_id, terminal_id, label, known_at, source, actor)"
            " VALUES ('earlier', %s, 'c', %s, 'fraud', %s, 'analyst', 'ana')",
            (start - pd.Timedelta(hours=2), terminal, start - pd.Timedelta(hours=1)),
        )
    ruleset = parse_rules(GRAPH_RULES)
    writer = RetryingWriter(db_dsn, source="simulator", worker="test",
                            alert_min_band="High", alert_dedup_s=600.0)  # fmt: skip
    pipeline = Pipeline(Simulator(**SIM), Detector(ruleset), writer)
    asyncio.run(pipeline.run(max_records=1000))
    assert pipeline.labels is not None and pipeline.labels.read == 1
    result = backtest(GRAPH_RULES, dsn=db_dsn)
    frame = result.frame
    on_terminal = (frame["terminal_id"] == terminal).to_numpy()
    in_window = (frame["ts"] <= start - pd.Timedelta(hours=2) + pd.Timedelta(days=1)).to_numpy()
    live = result.live_hits(["flagged_terminal"])["flagged_terminal"].to_numpy()
    assert on_terminal.sum() > 0
    assert (live == (on_terminal & in_window)).all()
    assert np.array_equal(frame["score"].to_numpy(), frame["live_score"].to_numpy())
