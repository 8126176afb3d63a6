"""The pipeline end to end against a real PostgreSQL: exactness, outages, dead letters, CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from workbench.analysis import backtest
from workbench.pipeline import writer as writer_module
from workbench.pipeline.graph import Pipeline
from workbench.pipeline.worker import build_pipeline
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.settings import Settings
from workbench.sources.replay import ReplaySource
from workbench.sources.simulator import Simulator
from workbench.storage import connect, counts, load_transactions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"


class Recording:
    """Wraps a source and keeps every batch it handed out."""

    def __init__(self, source) -> None:
        self.source = source
        self.name = source.name
        self.frames: list[pd.DataFrame] = []
        self.acked: list = []

    def next_batch(self):
        batch = self.source.next_batch()
        if batch is not None:
            self.frames.append(batch.frame)
        return batch

    def ack(self, position) -> None:
        self.acked.append(position)
        self.source.ack(position)

    def close(self) -> None:
        self.source.close()


def small_simulator(**overrides) -> Simulator:
    options = {"sim_customers": 800, "sim_terminals": 300, "batch_rows": 500, "seed": 3}
    options.update(overrides)
    return Simulator(**options)


def make_pipeline(dsn: str, source) -> Pipeline:
    ruleset = load_rules(RULES)
    writer = RetryingWriter(
        dsn,
        source=source.name,
        worker="test",
        alert_min_band=ruleset.alert.min_band,
        alert_dedup_s=ruleset.alert.dedup_s,
    )
    return Pipeline(source, Detector(ruleset), writer)


def stored_ids(dsn: str) -> pd.Series:
    with connect(dsn) as conn:
        return pd.Series([r[0] for r in conn.execute("SELECT tx_id FROM transactions")])


def test_run_stores_exactly_the_generated_transactions(db_dsn: str) -> None:
    source = Recording(small_simulator())
    pipeline = make_pipeline(db_dsn, source)
    stats = asyncio.run(pipeline.run(max_records=3000))
    generated = pd.concat(source.frames, ignore_index=True)
    assert stats.records == len(generated) >= 3000
    assert stats.stored == len(generated) and stats.dead == 0 and stats.duplicates == 0
    assert source.acked == [500 * k for k in range(1, len(source.frames) + 1)]

    with connect(db_dsn) as conn:
        rows = load_transactions(
            conn, generated["ts"].min(), generated["ts"].max() + pd.Timedelta(seconds=1)
        )
    assert sorted(rows["tx_id"]) == sorted(generated["tx_id"])
    # Scores in the database are those of an offline run over the same history.
    offline, _hits, _ = Detector(load_rules(RULES)).score_frame(generated)
    merged = rows.merge(
        offline[["tx_id", "risk_score", "band"]], on="tx_id", suffixes=("", "_offline")
    )
    assert (merged["risk_score"] == merged["risk_score_offline"]).all()
    assert (merged["band"] == merged["band_offline"]).all()
    assert set(rows["rule_set_version"]) == {load_rules(RULES).version}
    assert rows["band"].isin(["Low", "Medium", "High"]).all()
    assert (rows["band"] != "Low").any(), "the default rules should flag some simulated fraud"


def test_connections_terminated_mid_stream_lose_and_duplicate_nothing(db_dsn: str) -> None:
    source = Recording(small_simulator(batch_rows=300))
    pipeline = make_pipeline(db_dsn, source)
    dbname = psycopg.conninfo.conninfo_to_dict(db_dsn)["dbname"]
    kills = []

    def killer() -> None:
        with psycopg.connect(db_dsn, autocommit=True) as admin:
            for _ in range(6):
                time.sleep(0.3)
                n = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                ).fetchone()[0]
                kills.append(n)

    thread = threading.Thread(target=killer)
    thread.start()
    stats = asyncio.run(pipeline.run(duration=3.0))
    thread.join()
    assert sum(kills) > 0, "the test never caught the writer's connection"
    generated = pd.concat(source.frames, ignore_index=True)
    ids = stored_ids(db_dsn)
    assert len(ids) == ids.nunique() == stats.stored + stats.duplicates == len(generated)
    assert set(ids) == set(generated["tx_id"])


def test_database_killed_and_restarted_mid_stream(tmp_path: Path) -> None:
    from workbench.storage import upgrade
    from workbench.storage.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path / "wb")
    dsn = server.start()
    try:
        with connect(dsn) as conn:
            upgrade(conn)
        source = Recording(small_simulator(batch_rows=300))
        pipeline = make_pipeline(dsn, source)
        waited = []

        def outage() -> None:
            time.sleep(0.8)
            server.stop()
            time.sleep(1.5)
            waited.append(pipeline.stats.waiting_for_db)
            server.start()

        thread = threading.Thread(target=outage)
        thread.start()
        stats = asyncio.run(pipeline.run(duration=5.0))
        thread.join()
        assert waited == [True], "the pipeline should have been waiting for the database"
        assert stats.db_failures > 0
        generated = pd.concat(source.frames, ignore_index=True)
        ids = stored_ids(dsn)
        assert len(ids) == ids.nunique() == len(generated)
        assert set(ids) == set(generated["tx_id"])
    finally:
        server.stop()


def test_stop_ends_a_wait_for_the_database_at_once(monkeypatch) -> None:
    """Stopped while it waits to retry an unreachable database, the worker returns at once
    instead of after its backoff (here an hour); the batch stays unacknowledged."""
    monkeypatch.setattr(writer_module, "BACKOFF_START_S", 3600.0)
    source = Recording(small_simulator())
    pipeline = make_pipeline("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2", source)

    async def stop_while_waiting():
        run = asyncio.ensure_future(pipeline.run())
        while pipeline.stats.db_failures == 0:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # now in the backoff wait
        start = time.monotonic()
        pipeline.stop()
        stats = await asyncio.wait_for(run, timeout=600)
        return stats, time.monotonic() - start

    stats, waited = asyncio.run(stop_while_waiting())
    assert waited < 60, f"stop took {waited:.0f}s: the backoff wait was not interrupted"
    assert stats.waiting_for_db and stats.stored == 0
    assert source.acked == []


def test_malformed_records_are_dead_letters_and_counts_conserve(
    db_dsn: str, tmp_path: Path
) -> None:
    good = small_simulator().next_batch(400).frame
    raw = good.astype(object).copy()
    raw.loc[5, "amount"] = "lots"
    raw.loc[17, "ts"] = "yesterday-ish"
    raw.loc[33, "card_id"] = None
    raw.loc[90, "amount"] = -4
    path = tmp_path / "mixed.csv"
    raw.to_csv(path, index=False)
    source = ReplaySource(path, batch_rows=150)
    stats = asyncio.run(make_pipeline(db_dsn, source).run())
    assert stats.records == 400
    assert stats.dead == 4 and stats.stored == 396
    with connect(db_dsn) as conn:
        c = counts(conn)
        reasons = [r[0] for r in conn.execute("SELECT reason FROM dead_letters ORDER BY reason")]
    assert c["stored"] == 396 and c["dead"] == 4
    assert any("amount is not a number" in r for r in reasons)
    assert any("amount is negative" in r for r in reasons)
    assert any("ts" in r for r in reasons)
    assert any("card_id is missing" in r for r in reasons)


def _cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: float = 120):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PG") and k != "WORKBENCH_DATABASE_URL"
    }
    env.update({"WORKBENCH_RULES_DIR": str(RULES)}, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_embedded_database_from_a_clean_directory(tmp_path: Path) -> None:
    out = _cli(["run", "--duration", "4", "--rate", "2000"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".workbench" / "pg" / "data" / "PG_VERSION").exists()
    summary = out.stdout.strip().splitlines()[-1]
    assert summary.startswith("records in ")
    stored = int(summary.split("stored ")[1].split()[0].replace(",", ""))
    assert stored > 1000
    status = _cli(["db", "status"], cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"stored {stored:>12,}".replace(" ", "") in status.stdout.replace(" ", "")


def test_cli_errors_are_one_line(db_dsn: str, tmp_path: Path) -> None:
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "x.yaml").write_text("rules:\n  - id: big\n    when: amout > 5\n    score: 10\n")
    out = _cli(
        ["run", "--duration", "1"],
        cwd=tmp_path,
        env_extra={"WORKBENCH_DATABASE_URL": db_dsn, "WORKBENCH_RULES_DIR": str(bad)},
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "amout" in lines[0] and "x.yaml:3" in lines[0], out.stderr
    out = _cli(
        ["run", "--duration", "1"],
        cwd=tmp_path,
        env_extra={"WORKBENCH_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"},
    )
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "cannot connect" in out.stderr


def test_a_row_refused_for_its_data_becomes_a_dead_letter(db_dsn: str, make_batch) -> None:
    scored = make_batch(20, prefix="bad")
    scored.frame.loc[3, "amount"] = float("nan")  # violates NOT NULL: fails on every retry
    writer = RetryingWriter(db_dsn, source="test", worker="test")
    assert asyncio.run(writer.write(scored)) is True
    writer.close()
    assert writer.stats.stored == 19 and writer.stats.dead == 1 and writer.stats.records == 20
    with connect(db_dsn) as conn:
        reasons = [r[0] for r in conn.execute("SELECT reason FROM dead_letters")]
        stored = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
    assert stored == 19 and len(reasons) == 1
    assert reasons[0].startswith("refused by the database (SQLSTATE 23502)")


def test_a_batch_is_acknowledged_while_the_next_one_is_still_scored(db_dsn: str) -> None:
    # Scoring runs off the event loop: the first batch's commit is acknowledged (and counted)
    # while the second batch is being scored, not after.
    acked = threading.Event()
    seen: list[bool] = []

    class AckingSource(Recording):
        def ack(self, position) -> None:
            super().ack(position)
            acked.set()

    class SlowSecondBatch(Detector):
        def process(self, batch):
            if self.calls == 1:
                seen.append(acked.wait(timeout=20.0))
                seen.append(pipeline.stats.batches == 1)
            self.calls += 1
            return super().process(batch)

    source = AckingSource(small_simulator())
    pipeline = make_pipeline(db_dsn, source)
    pipeline.detector = SlowSecondBatch(load_rules(RULES))
    pipeline.detector.calls = 0
    stats = asyncio.run(pipeline.run(max_records=1000))
    assert stats.stored >= 1000 and source.acked[:2] == [500, 1000]
    assert seen == [True, True]


def test_a_worker_on_feature_threads_stores_what_the_backtest_scores(db_dsn: str) -> None:
    settings = Settings.load(
        {
            "WORKBENCH_RULES_DIR": str(RULES),
            "WORKBENCH_FEATURE_THREADS": "2",
            "WORKBENCH_BATCH_ROWS": "500",
            "WORKBENCH_SIM_CUSTOMERS": "800",
            "WORKBENCH_SIM_TERMINALS": "300",
        }
    )
    pipeline = build_pipeline(settings, db_dsn)
    assert pipeline.detector.features.threads == 2
    try:
        stats = asyncio.run(pipeline.run(max_records=3000))
    finally:
        pipeline.writer.close()
    assert stats.stored >= 3000
    # The backtest computes the features on one thread: the same scores, row by row.
    result = backtest(RULES, dsn=db_dsn, cache=False)
    assert len(result.frame) == stats.stored
    assert (result.frame["score"] == result.frame["live_score"]).all()
    assert (result.frame["band"] != "Low").any()  # not vacuous
