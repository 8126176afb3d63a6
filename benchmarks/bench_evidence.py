"""What "why, with numbers", lists and snoozes cost the hot path, against a real PostgreSQL.

1. Scoring: the default rules on simulator batches, ``Scorer.score`` (no evidence) against
   ``Scorer.score_explained`` (evidence of the alert-band rows), per batch.
2. Writing: the same scored batches through a ``BatchWriter`` into two fresh databases, one
   with the evidence dropped (``evidence=None``: the write path before this change) and one
   with it; per-batch write time, and the stored evidence size per alerted transaction.
3. Lists and snoozes: a rule ``card_id in list("blocked_cards")`` with 10,000 entries, and
   1,000 snoozes of one rule, per batch (``isin`` and the snooze mask).

Creates databases ``wb_bench_ev_{a,b}_<pid>`` on ``--dsn`` (or ``WORKBENCH_BENCH_DSN``),
drops them at the end. Prints figures; no pass/fail.

Usage: python benchmarks/bench_evidence.py [--batches 60] [--batch 5000] [--dsn DSN] [--quick]
(--quick: 20 batches.)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _db import admin_dsn, own_database
from _report import figure

from workbench.features.engine import FeatureEngine
from workbench.rules import load_rules, parse_rules
from workbench.scoring.overlay import Overlay
from workbench.scoring.scorer import Scorer
from workbench.sources.simulator import Simulator
from workbench.storage import BatchWriter, connect, upgrade

ROOT = Path(__file__).resolve().parents[1]


def p50_ms(values: list[float]) -> float:
    return float(np.percentile(values, 50)) * 1000


def ms(values: list[float]) -> str:
    a = np.asarray(values) * 1000
    return f"p50 {np.percentile(a, 50):7.2f} ms  p95 {np.percentile(a, 95):7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.batches = min(args.batches, 20)
    ruleset = load_rules(ROOT / "rules")
    sim = Simulator(batch_rows=args.batch)
    engine = FeatureEngine(ruleset.features)
    scorer = Scorer(ruleset)
    plain, explained, batches = [], [], []
    for _ in range(args.batches):
        frame = sim.next_batch().frame
        feats = engine.compute_arrays(frame)
        t0 = time.perf_counter()
        scorer.score(frame, feats)
        t1 = time.perf_counter()
        scores, hits, _errors, found = scorer.score_explained(frame, feats)
        t2 = time.perf_counter()
        plain.append(t1 - t0)
        explained.append(t2 - t1)
        batches.append((pd.concat([frame, scores], axis=1), hits, found))
    rows = sum(len(b[0]) for b in batches)
    alerted = sum(len(set(b[2].column("row").to_pylist())) for b in batches)
    print(f"{args.batches} batches of {args.batch:,} rows; {alerted:,} alert-band rows of {rows:,}")
    print(f"1. scoring without evidence  {ms(plain)}")
    print(f"   scoring with evidence     {ms(explained)}")
    figure(f"scoring with evidence, {args.batch:,}-row batch, p50", p50_ms(explained), "ms",
           anchor="without evidence", ratio=p50_ms(explained) / p50_ms(plain))  # fmt: skip

    from workbench.scoring.result import ScoredBatch

    def write(db: str, keep: bool) -> list[float]:
        times = []
        with connect(db) as conn:
            writer = BatchWriter(conn)
            for frame, hits, found in batches:
                scored = ScoredBatch(frame=frame, hits=hits, dead=_no_dead(), evidence=found)
                if not keep:
                    scored = dataclasses.replace(scored, evidence=None)
                t0 = time.perf_counter()
                writer.write(scored)
                times.append(time.perf_counter() - t0)
            if keep:
                size = conn.execute(
                    "SELECT count(*), avg(pg_column_size(evidence)) FROM alert_evidence"
                ).fetchone()
                print(
                    f"   stored evidence: {size[0]:,} transactions, {size[1] or 0:.0f} bytes each"
                )
        return times

    with (
        own_database(args.dsn, "wb_bench_ev_a") as plain,
        own_database(args.dsn, "wb_bench_ev_b") as explained,
    ):
        for dsn in (plain, explained):
            with connect(dsn) as conn:
                upgrade(conn)
        before = write(plain, keep=False)
        after = write(explained, keep=True)
        print(f"2. write without evidence    {ms(before)}")
        print(f"   write with evidence       {ms(after)}")
        figure(f"write with evidence, {args.batch:,}-row batch, p50", p50_ms(after), "ms",
               anchor="without evidence", ratio=p50_ms(after) / p50_ms(before))  # fmt: skip

    rule = 'rules:\n  - id: blocked\n    when: card_id in list("blocked_cards")\n    score: 80\n'
    listed = parse_rules({"r.yaml": rule})
    frame = batches[-1][0]
    cards = frame["card_id"].astype(str).unique()
    lists = {"blocked_cards": [f"x{i}" for i in range(9_990)] + list(cards[:10])}
    snoozes = pd.DataFrame(
        {
            "rule_id": ["blocked"] * 1000,
            "kind": ["card"] * 1000,
            "value": list(cards[:1000]),
            "until": pd.Timestamp("2100-01-01", tz="UTC"),
        }
    )
    base = None
    for label, overlay in (
        ("no lists, no snoozes", Overlay()),
        ("10,000 list entries", Overlay.build(lists)),
        ("+ 1,000 snoozes", Overlay.build(lists, snoozes)),
    ):
        timed = Scorer(listed, overlay)
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            timed.score(frame, {})
            times.append(time.perf_counter() - t0)
        print(f"3. {label:<22} {ms(times)} per {len(frame):,}-row batch")
        base = base or p50_ms(times)
    figure("list rule, 10k entries + 1k snoozes, p50", p50_ms(times), "ms",
           anchor="no lists, no snoozes", ratio=p50_ms(times) / base)  # fmt: skip


def _no_dead() -> pd.DataFrame:
    return pd.DataFrame({"raw": pd.Series([], dtype="str"), "reason": pd.Series([], dtype="str")})


if __name__ == "__main__":
    main()
