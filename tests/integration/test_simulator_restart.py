"""A restarted simulator worker continues its stream: real ``workbench run`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from workbench.settings import Settings
from workbench.sources.simulator import Simulator
from workbench.storage import connect
from workbench.storage.transactions import stream_position

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "rules"
BATCH = 500
# Card testing and takeovers carry state across batches that a restart loses (see
# Simulator.resume): without them, the stored stream must equal an uninterrupted one exactly.
ENV = {
    "WORKBENCH_RULES_DIR": str(RULES),
    "WORKBENCH_SEED": "13",
    "WORKBENCH_SIM_CUSTOMERS": "2000",
    "WORKBENCH_SIM_TERMINALS": "500",
    "WORKBENCH_FRAUD_CARD_TESTING": "0",
    "WORKBENCH_FRAUD_ACCOUNT_TAKEOVER": "0",
}


WORKER = [sys.executable, "-m", "workbench", "run", "--duration", "3", "--rate", "3000"]


def _run(dsn: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(ENV, WORKBENCH_DATABASE_URL=dsn)
    done = subprocess.run(
        [*WORKER, "--batch-rows", str(BATCH)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _stored(dsn: str) -> pd.DataFrame:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tx_id, ts, card_id, terminal_id, fraud_scenario FROM transactions"
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["tx_id", "ts", "card_id", "terminal_id", "scenario"])
    frame["n"] = frame["tx_id"].str.removeprefix("sim13-").astype(int)
    return frame.sort_values("n", ignore_index=True)


def test_a_restarted_worker_continues_where_it_stopped(db_dsn: str, tmp_path: Path) -> None:
    with connect(db_dsn) as conn:
        assert stream_position(conn, "simulator", "sim13-") is None
    _run(db_dsn, tmp_path)
    first = _stored(db_dsn)
    assert len(first) >= BATCH and len(first) % BATCH == 0
    with connect(db_dsn) as conn:
        position, newest = stream_position(conn, "simulator", "sim13-")
    assert position == len(first) and newest == first["ts"].max()

    summary = _run(db_dsn, tmp_path)
    assert "duplicates 0 " in summary, summary  # nothing regenerated
    stored = _stored(db_dsn)
    assert len(stored) > len(first)
    assert list(stored["n"]) == list(range(len(stored)))  # no gap, no repeat
    later = stored.iloc[len(first) :]
    assert later["ts"].min() >= first["ts"].max()

    # Exactly the rows one uninterrupted simulator makes with the same settings.
    settings = Settings.load(dict(ENV, WORKBENCH_RATE="3000", WORKBENCH_BATCH_ROWS=str(BATCH)))
    sim = Simulator(settings)
    whole = pd.concat([sim.next_batch().frame for _ in range(len(stored) // BATCH)])
    assert list(stored["tx_id"]) == list(whole["tx_id"])
    assert list(stored["card_id"]) == list(whole["card_id"])
    assert list(stored["terminal_id"]) == list(whole["terminal_id"])
    want_ts = pd.DatetimeIndex(whole["ts"]).floor("us")  # PostgreSQL keeps microseconds
    got_ts = pd.DatetimeIndex(pd.to_datetime(stored["ts"], utc=True))
    assert (abs(got_ts - want_ts) <= pd.Timedelta(microseconds=1)).all()
