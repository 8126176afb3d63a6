"""A hostile CSV file replayed through the real pipeline into PostgreSQL: one broken line costs
one row, and ``records in = stored + duplicates + dead letters`` holds in the database too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from workbench import schema
from workbench.pipeline.graph import Pipeline
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.sources.replay import ReplaySource, write_dataset
from workbench.sources.simulator import Simulator
from workbench.storage import connect, counts

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "rules"


def pipeline(dsn: str, source: ReplaySource) -> Pipeline:
    ruleset = load_rules(RULES)
    writer = RetryingWriter(
        dsn,
        source=source.name,
        worker="test",
        alert_min_band=ruleset.alert.min_band,
        alert_dedup_s=ruleset.alert.dedup_s,
    )
    return Pipeline(source, Detector(ruleset), writer)


def test_an_unclosed_quote_in_3000_rows_costs_exactly_one_row(db_dsn: str, tmp_path: Path):
    sim = Simulator(sim_customers=500, sim_terminals=200, batch_rows=3000, seed=5)
    good = sim.next_batch(3000).frame
    path = tmp_path / "replay.csv"
    write_dataset([good], path)
    lines = path.read_bytes().split(b"\n")
    broken = 1500  # a data line in the middle of a batch
    fields = lines[broken].split(b",")
    fields[2] = b'"' + fields[2]  # card_id opens a quote that never closes
    lines[broken] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))
    lost = good["tx_id"].iloc[broken - 1]

    stats = asyncio.run(pipeline(db_dsn, ReplaySource(path, batch_rows=1000)).run())

    assert stats.records == 3000
    assert stats.records == stats.stored + stats.duplicates + stats.dead
    assert (stats.stored, stats.duplicates, stats.dead) == (2999, 0, 1)
    with connect(db_dsn) as conn:
        c = counts(conn)
        dead = conn.execute("SELECT raw, reason FROM dead_letters").fetchall()
        stored = conn.execute("SELECT tx_id, amount::text FROM transactions").fetchall()
    assert (c["stored"], c["dead"]) == (2999, 1)
    [(raw, reason)] = dead
    assert reason.startswith(f"line {broken + 1}: unclosed quote") and lost in raw
    expected = good[good["tx_id"] != lost]
    assert sorted(t for t, _ in stored) == sorted(expected["tx_id"])
    # Money: what the database holds sums to the input's decimals, to the cent.
    stored_cents = sum(round(float(a) * 100) for _, a in stored)
    assert stored_cents == int(schema.cents(expected["amount"]).sum())


def test_replaying_bad_values_conserves_counts_in_the_database(db_dsn: str, tmp_path: Path):
    sim = Simulator(sim_customers=300, sim_terminals=100, batch_rows=500, seed=9)
    raw = sim.next_batch(500).frame.astype(object)
    raw.loc[3, "amount"] = "1e20"
    raw.loc[4, "amount"] = "1.005"
    raw.loc[5, "ts"] = "2262-01-01"
    raw.loc[6, "card_id"] = "k" * 3000
    path = tmp_path / "bad.csv"
    pd.DataFrame(raw).to_csv(path, index=False)
    with path.open("ab") as fh:
        fh.write(b"\n\xff\xfe,broken,line\n")  # an empty line, then bytes that are not UTF-8

    stats = asyncio.run(pipeline(db_dsn, ReplaySource(path, batch_rows=200)).run())

    assert stats.records == stats.stored + stats.duplicates + stats.dead == 501
    assert stats.dead == 5
    with connect(db_dsn) as conn:
        c = counts(conn)
        reasons = sorted(r for (r,) in conn.execute("SELECT reason FROM dead_letters"))
    assert (c["stored"], c["dead"]) == (496, 5)
    assert reasons == sorted(
        [
            "line 5: amount is not a plain decimal: '1e20'",
            "line 6: amount has more than 2 decimal places: '1.005'",
            "line 7: ts is outside 1970-01-01 .. 2100-01-01: '2262-01-01'",
            "line 8: card_id is longer than 128 characters",
            "line 503: not valid utf-8 text",
        ]
    )
