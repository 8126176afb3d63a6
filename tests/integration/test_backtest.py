"""Backtests against a real PostgreSQL: stream == backtest, and known answers end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import backtest, load_history
from workbench.errors import ConfigError
from workbench.pipeline.graph import Pipeline
from workbench.pipeline.lists import build_overlay
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules, parse_rules
from workbench.schema import coerce
from workbench.scoring.detector import Detector
from workbench.scoring.overlay import Overlay
from workbench.scoring.result import ScoredBatch
from workbench.sources.simulator import Simulator
from workbench.storage import connect, counts, lists, snoozes, write_batch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
SEED_ROWS = 8000
# About 600 transactions per simulated day: the history spans ~13 days, longer than the
# default rules' 7-day label delay, and compromised terminals are frequent enough for the
# label-aware rule to fire.
SIMULATOR = {
    "seed": 11,
    "sim_customers": 600,
    "sim_terminals": 200,
    "batch_rows": 400,
    "rate": 1000.0,
    "sim_speedup": 144_000.0,
    "fraud_compromised_terminal": 0.01,
}


@pytest.fixture(scope="module")
def seeded_dsn(databases, template_db: str) -> Iterator[str]:
    """A database filled by the real streaming pipeline (simulator -> features -> rules ->
    COPY), once for this module."""
    with databases.fresh("wb_bt", template=template_db) as dsn:
        ruleset = load_rules(RULES)
        writer = RetryingWriter(
            dsn,
            source="simulator",
            worker="test",
            alert_min_band=ruleset.alert.min_band,
            alert_dedup_s=ruleset.alert.dedup_s,
        )
        pipeline = Pipeline(Simulator(**SIMULATOR), Detector(ruleset), writer)
        asyncio.run(pipeline.run(max_records=SEED_ROWS))
        yield dsn


def test_stream_scores_equal_backtest_scores(seeded_dsn: str) -> None:
    progress: list[tuple[float, int]] = []
    result = backtest(RULES, dsn=seeded_dsn, progress=lambda f, n: progress.append((f, n)))
    with connect(seeded_dsn) as conn:
        stored = counts(conn)["stored"]
    frame = result.frame
    assert len(frame) == stored >= SEED_ROWS
    assert (frame["ts"].max() - frame["ts"].min()) > pd.Timedelta(days=10)
    assert set(frame["live_version"]) == {load_rules(RULES).version}
    assert np.array_equal(frame["score"].to_numpy(), frame["live_score"].to_numpy())
    assert (frame["band"] == frame["live_band"]).all()
    # Which rules hit, row by row, is the same too.
    live = result.live_hits(list(result.hits.columns))
    assert (live.to_numpy() == result.hits.to_numpy()).all()
    # Not vacuous: the label-aware rule (7-day label delay) and others fired.
    assert result.hits["compromised_terminal"].sum() > 0
    assert (frame["band"] == "High").sum() > 0
    assert progress and progress[-1][0] == pytest.approx(1.0) and progress[-1][1] == stored


def test_backtest_of_a_later_range_warms_up_on_earlier_history(seeded_dsn: str) -> None:
    full = load_history(dsn=seeded_dsn)
    start = full["ts"].min() + pd.Timedelta(days=8)
    end = full["ts"].max() - pd.Timedelta(days=2)
    result = backtest(RULES, start, end, dsn=seeded_dsn, chunk_s=6 * 3600)
    inside = full[(full["ts"] >= start) & (full["ts"] < end)]
    assert result.warmup_rows == int((full["ts"] < start).sum()) > 0
    assert result.frame["tx_id"].tolist() == inside["tx_id"].tolist()
    assert np.array_equal(result.frame["score"].to_numpy(), inside["risk_score"].to_numpy())


CANDIDATE = """
bands: {medium: 40, high: 70}
alert: {min_band: high, dedup: 10m}
rules:
  - id: big
    when: amount > 100
    score: 80
"""
LIVE = """
bands: {medium: 40, high: 70}
alert: {min_band: high, dedup: 10m}
rules:
  - id: small
    when: amount < 25
    score: 75
"""


def test_comparison_on_a_hand_made_history_gives_known_answers(db_dsn: str) -> None:
    raw = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(8)],
            "ts": [
                "2026-03-02 10:00",
                "2026-03-02 11:00",
                "2026-03-02 12:00",
                "2026-03-02 13:00",
                "2026-03-03 10:00",
                "2026-03-03 11:00",
                "2026-03-03 12:00",
                "2026-03-03 13:00",
            ],
            "card_id": ["c1", "c2", "c3", "c4"] * 2,
            "amount": [500.0, 150.0, 20.0, 30.0, 700.0, 50.0, 300.0, 10.0],
            "is_fraud": ["true", "false", "true", "false", "true", "false", "true", ""],
            "fraud_scenario": [
                "leaked_card", "", "card_testing", "", "leaked_card", "", "account_takeover", "",
            ],
        }
    )  # fmt: skip
    batch, dead = coerce(raw)
    assert dead.empty
    scored, hits, _ = Detector(parse_rules({"live.yaml": LIVE})).score_frame(batch)
    with connect(db_dsn) as conn:
        write_batch(conn, ScoredBatch(frame=scored, hits=hits, dead=dead))

    result = backtest({"candidate.yaml": CANDIDATE}, dsn=db_dsn)
    assert result.frame["score"].tolist() == [80, 80, 0, 0, 80, 0, 80, 0]
    cmp = result.compare(k=2)
    # Candidate flags t0, t1, t4, t6; frauds are t0, t2, t4, t6 (t7 has no label).
    cand, live = cmp.summary.loc["candidate"], cmp.summary.loc["live"]
    assert cand["precision"] == pytest.approx(3 / 4) and cand["recall"] == pytest.approx(3 / 4)
    # Live flags t2 (fraud) and t7 (unlabelled): precision 1, recall 1/4.
    assert live["precision"] == 1.0 and live["recall"] == pytest.approx(1 / 4)
    assert cmp.migration.loc["Low"].tolist() == [2, 0, 4]
    assert cmp.migration.loc["High"].tolist() == [2, 0, 0]
    assert cmp.alerts_per_day["candidate"].tolist() == [2, 2]
    assert cmp.alerts_per_day["live"].tolist() == [1, 1]
    # Day 1: c1 (fraud) and c2 tie at 80, c1 first; day 2: c1 and c3, both fraud.
    assert cmp.cp_at_k["candidate"].tolist() == [0.5, 1.0]
    # Live day 1: c3 (75, fraud) then c1 (0, fraud, by id); day 2: c4 (75) then c1 (fraud).
    assert cmp.cp_at_k["live"].tolist() == [1.0, 0.5]
    rules = cmp.rules.reset_index().set_index(["scoring", "rule_id"])
    assert rules.loc[("candidate", "big"), ["hits", "tp", "fp", "fn"]].tolist() == [4, 3, 1, 1]
    assert rules.loc[("live", "small"), ["hits", "tp", "fp", "fn"]].tolist() == [2, 1, 0, 3]
    scen = cmp.scenarios.reset_index().set_index(["scoring", "scenario"])
    assert scen.loc[("candidate", "leaked_card"), "recall"] == 1.0
    assert scen.loc[("candidate", "card_testing"), "recall"] == 0.0
    assert scen.loc[("live", "card_testing"), "recall"] == 1.0
    # Recall at every band: the candidate scores leaked_card High (80), card_testing Low (0).
    assert scen.loc[("candidate", "leaked_card"), ["recall_medium", "recall_high"]].tolist() == [
        1.0,
        1.0,
    ]
    assert scen.loc[("candidate", "card_testing"), "recall_medium"] == 0.0
    # Handbook protocol: c1, found on day 1, is no candidate on day 2: c3 (80, fraud), then
    # c2 before c4 (both 0, by id) -> 1 / 2, where the daily protocol gives c1, c3 -> 1.0.
    hb = result.compare(k=2, protocol="handbook")
    assert hb.cp_at_k["candidate"].tolist() == [0.5, 0.5]
    assert "Card Precision@2, handbook protocol: daily top-2 cards, known-compromised cards " \
        "excluded, mean over 2 days: live" in hb.text()  # fmt: skip
    assert hb.to_dict()["cp_protocol"]["mean"]["candidate"] == pytest.approx(0.5)
    sweep = cmp.sweep.set_index(["scoring", "threshold"])
    assert sweep.loc[("candidate", 80.0), "flagged"] == 4
    assert sweep.loc[("candidate", 85.0), "flagged"] == 0
    # The report renders and the JSON form is plain JSON.
    assert "band migration" in cmp.text()
    again = json.loads(json.dumps(cmp.to_dict()))
    assert again["summary"]["candidate"]["precision"] == pytest.approx(0.75)
    assert [d["day"] for d in again["cp_at_k"]] == ["2026-03-02", "2026-03-03"]


def test_cli_backtest_json_and_report(db_dsn: str, tmp_path: Path) -> None:
    raw = pd.DataFrame(
        {
            "tx_id": ["a", "b", "c"],
            "ts": ["2026-03-02 10:00", "2026-03-02 11:00", "2026-03-03 10:00"],
            "card_id": ["c1", "c2", "c1"],
            "amount": [500.0, 20.0, 30.0],
            "is_fraud": ["true", "false", "false"],
        }
    )
    batch, dead = coerce(raw)
    scored, hits, _ = Detector(parse_rules({"live.yaml": LIVE})).score_frame(batch)
    with connect(db_dsn) as conn:
        write_batch(conn, ScoredBatch(frame=scored, hits=hits, dead=dead))
    rules = tmp_path / "candidate.yaml"
    rules.write_text(CANDIDATE)
    env = {**os.environ, "WORKBENCH_DATABASE_URL": db_dsn}
    cli = [sys.executable, "-m", "workbench", "backtest", str(rules)]
    out = subprocess.run([*cli, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["summary"]["candidate"]["transactions"] == 3
    assert report["summary"]["candidate"]["recall"] == 1.0
    assert report["migration"]["Low"]["High"] == 1
    out = subprocess.run(
        [*cli, "--start", "2026-03-03", "--end", "2026-03-04", "--k", "1"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "1 transactions" in out.stdout and "band migration" in out.stdout
    bad = subprocess.run(
        [*cli, "--start", "2026-03-04", "--end", "2026-03-03"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")


def test_cli_replay_loads_a_file_then_backtest_reproduces_it(db_dsn: str, tmp_path: Path) -> None:
    data = tmp_path / "history.parquet"
    env = {**os.environ, "WORKBENCH_DATABASE_URL": db_dsn, "WORKBENCH_SIM_CUSTOMERS": "300"}
    run = [sys.executable, "-m", "workbench"]
    made = subprocess.run(
        [*run, "simulate", "--out", str(data), "--rows", "1500"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = subprocess.run(
        [*run, "replay", str(data), "--rules", str(RULES)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "stored 1,500" in out.stdout
    with connect(db_dsn) as conn:
        assert counts(conn)["stored"] == 1500
    result = backtest(RULES, dsn=db_dsn)
    assert len(result.frame) == 1500
    assert np.array_equal(result.frame["score"].to_numpy(), result.frame["live_score"].to_numpy())


def test_load_history_of_an_empty_database_is_an_empty_frame_but_backtest_refuses(
    db_dsn: str,
) -> None:
    # A live notebook may look before its pipeline has stored anything.
    empty = load_history("2026-01-01", dsn=db_dsn)
    assert empty.empty and list(empty.columns[:3]) == ["tx_id", "ts", "card_id"]
    assert load_history(dsn=db_dsn).empty
    with pytest.raises(ConfigError, match="database is empty"):
        backtest(str(RULES), dsn=db_dsn)


LIST_RULES = """
rules:
  - id: blocked_card
    description: The card is on the block list
    when: card_id in list("blocked_cards")
    score: 80
  - id: blocked_merchant
    when: merchant_category in list("blocked_merchants") and amount > 20
    score: 30
"""
BLOCKED = [f"card{i}" for i in range(1, 80)]
SNOOZED_CARD, SNOOZE_UNTIL = "card10", pd.Timestamp("2026-01-03T00:00:00Z")


def test_stream_equals_backtest_with_a_block_list_and_a_snooze(db_dsn: str, tmp_path: Path) -> None:
    """Lists and snoozes in force while the stream scored: the backtest (reading them as
    they are now) reproduces every score and hit, the snooze by its event-time window."""
    texts = {f"rules/{p.name}": p.read_text() for p in sorted(RULES.glob("*.yaml"))} | {
        "rules/lists.yaml": LIST_RULES
    }
    ruleset = parse_rules(texts)
    with connect(db_dsn) as conn:
        for card in BLOCKED:
            lists.add(conn, "blocked_cards", "card", card, added_by="test")
        snoozes.add(
            conn,
            "blocked_card",
            "card",
            SNOOZED_CARD,
            SNOOZE_UNTIL.to_pydatetime(),
            reason="known customer",
            created_by="test",
        )
        lists_dir = tmp_path / "lists"
        lists_dir.mkdir()
        (lists_dir / "blocked_merchants.txt").write_text("# from the bank\ntravel\n")
        overlay = build_overlay(conn, lists_dir)
    writer = RetryingWriter(
        db_dsn,
        source="simulator",
        worker="test",
        alert_min_band=ruleset.alert.min_band,
        alert_dedup_s=ruleset.alert.dedup_s,
    )
    detector = Detector(ruleset, overlay=overlay)
    asyncio.run(Pipeline(Simulator(**SIMULATOR), detector, writer).run(max_records=3000))

    result = backtest(ruleset, dsn=db_dsn, lists_dir=lists_dir)
    frame = result.frame
    assert len(frame) >= 3000
    assert np.array_equal(frame["score"].to_numpy(), frame["live_score"].to_numpy())
    live = result.live_hits(list(result.hits.columns))
    assert (live.to_numpy() == result.hits.to_numpy()).all()
    assert result.overlay.version == overlay.version
    # Not vacuous: both list rules fired, and the snooze hid the card's hits before its
    # end (event time) but not after.
    cards = frame["card_id"].astype(str)
    blocked = result.hits["blocked_card"]
    assert blocked.sum() > 0 and result.hits["blocked_merchant"].sum() > 0
    before = (cards == SNOOZED_CARD) & (frame["ts"] < SNOOZE_UNTIL)
    after = (cards == SNOOZED_CARD) & (frame["ts"] >= SNOOZE_UNTIL)
    assert before.sum() > 0 and after.sum() > 0
    assert not blocked[before].any() and blocked[after].all()
    assert result.snoozed == int(before.sum())
    assert blocked[cards.isin(BLOCKED) & ~before].all()
    assert "as they are now in the database" in result.lists_note
    assert "event time is before its end" in result.lists_note

    # Without the lists, the same history scores differently: the lists are what matched.
    bare = backtest(ruleset, dsn=db_dsn, overlay=Overlay())
    assert bare.hits["blocked_card"].sum() == 0 and bare.snoozed == 0
    lower = (bare.frame["score"] < frame["score"]).to_numpy()
    listed = (result.hits["blocked_card"] | result.hits["blocked_merchant"]).to_numpy()
    assert lower.sum() > 0 and not (lower & ~listed).any()

    # The CLI: the lists from a directory instead, snoozes left out, said in the report.
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, text in texts.items():
        (rules / Path(name).name).write_text(text)
    only = tmp_path / "only"
    only.mkdir()
    (only / "blocked_cards.txt").write_text(f"{SNOOZED_CARD}\n")
    env = {**os.environ, "WORKBENCH_DATABASE_URL": db_dsn}
    cli = [sys.executable, "-m", "workbench", "backtest", str(rules), "--lists-from", str(only)]
    out = subprocess.run(
        [*cli, "--no-snoozes", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["lists"]
    assert report["lists"] == {"blocked_cards": 1} and report["snoozes"] == 0
    assert report["hits_snoozed"] == 0 and "snoozes left out" in report["source"]
    rules_hit = json.loads(out.stdout)["rules"]
    got = {(r["scoring"], r["rule_id"]): r["hits"] for r in rules_hit}
    assert got[("candidate", "blocked_card")] == int((cards == SNOOZED_CARD).sum())
    text = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert f"lists and snoozes: lists from {only}" in text.stdout


def test_cli_handbook_data_replays_and_backtests_with_the_handbook_protocol(
    db_dsn: str, tmp_path: Path
) -> None:
    data = tmp_path / "handbook.csv"
    env = {**os.environ, "WORKBENCH_DATABASE_URL": db_dsn}
    run = [sys.executable, "-m", "workbench"]
    made = subprocess.run(
        [*run, "simulate", "--kind", "handbook", "--customers", "60", "--terminals", "120",
         "--days", "6", "--seed", "3", "--out", str(data)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    rows = len(pd.read_csv(data))
    out = subprocess.run(
        [*run, "replay", str(data), "--mapping", "handbook", "--rules", str(RULES)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    with connect(db_dsn) as conn:
        assert counts(conn)["stored"] == rows
    backtest_cmd = [*run, "backtest", str(RULES), "--cp-k", "100", "--protocol", "handbook"]
    out = subprocess.run(backtest_cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (
        "Card Precision@100, handbook protocol: daily top-100 cards, known-compromised cards "
        "excluded, mean over 6 days" in out.stdout
    )
    assert ">=medium" in out.stdout and ">=high" in out.stdout
    out = subprocess.run(
        [*backtest_cmd, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    report = json.loads(out.stdout)
    assert report["cp_protocol"]["name"] == "handbook" and report["cp_protocol"]["days"] == 6
    assert len(report["cp_at_k"]) == 6
    assert {"recall_medium", "recall_high", "recall"} <= set(report["scenarios"][0])
