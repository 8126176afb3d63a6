"""End-to-end pipeline throughput against a real PostgreSQL, side by side in one run.

1. The real worker (simulator -> features -> default rules -> COPY into the real schema):
   ``Pipeline`` + ``Detector`` + ``RetryingWriter`` as fast as possible for ``--seconds``,
   in ``--rounds`` alternating segments with the writer's COPYs as CSV (``binary_copy=False``:
   the same writer with its COPYs in the text format it used before) and as binary (now);
   then paced at ``--pace`` tx/s (default 10,000, the issue's target) in batches of
   ``--paced-batch`` rows for
   ``--paced-seconds`` (the stream goes on: same simulator, same feature state).
2. (a) Raw COPY anchors: the rows of run 1, prepared in advance (not timed) as CSV (scores,
   ``rule_hits`` JSON text) and as binary COPY (the writer's own encoder), COPYed straight
   into ``transactions`` (same partitions and indexes), one COPY + commit per batch: no
   staging, no idempotency, no alerts. Beside them, the same batches through a
   ``BatchWriter`` (storage only, payloads built inside the timed write), with CSV and with
   binary COPY. The four are interleaved batch by batch (rotating order, each with its own tx_id
   prefix, into the tables the worker writes), and run after each round's worker segments
   over batches of that round: e2e and anchors meet the same server load.
3. (b) "Like the seed project": one SQLAlchemy ORM object per row, ``session.add`` +
   ``session.commit`` each, into a plain table with the same primary key (psycopg per-row
   INSERT + commit when SQLAlchemy is missing; the output says which).

Latency is per batch, from its creation (the simulator makes a batch at once, so its events
exist from then) to its commit. The headline is the paced run (a load the worker carries);
the max-rate figure includes queueing behind the write in flight.

The script creates its own database ``wb_bench_<pid>`` on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``), migrates it, and drops it at the end (WITH (FORCE)), also on Ctrl-C.
Prints figures and ratios; no pass/fail.

Usage: python benchmarks/bench_pipeline.py [--quick] [--seconds 30] [--batch 5000] [--pace 10000]
       [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from _db import admin_dsn, own_database  # benchmarks/ is the script's directory: on sys.path
from _report import figure
from psycopg import conninfo, sql

from workbench.pipeline.graph import Pipeline
from workbench.pipeline.stats import PipelineStats
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator
from workbench.storage import BatchWriter, PreparedBatch, connect, record_rule_set, upgrade
from workbench.storage.prepared import DIRECT_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
EMPTIED = (
    "transactions, transaction_ids, alerts, alert_hits, alert_evidence, cases, case_events,"
    " dead_letters, pipeline_stats"
)
ANCHORS = ("raw COPY, CSV", "raw COPY, binary", "writer, CSV COPY",
           "writer, binary COPY (now)")  # fmt: skip


class TimedSource:
    """The simulator, timing how long each batch takes to generate."""

    def __init__(self, sim: Simulator, rows: int) -> None:
        self.sim, self.rows, self.name = sim, rows, sim.name
        self.seconds: list[float] = []

    def next_batch(self):
        start = time.perf_counter()
        batch = self.sim.next_batch(self.rows)
        self.seconds.append(time.perf_counter() - start)
        return batch

    def ack(self, position) -> None:
        self.sim.ack(position)

    def close(self) -> None:
        """The stream goes on in the next run: nothing to close."""


class TimedDetector(Detector):
    """The real detector; times each batch and (optionally) keeps the scored batches."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seconds: list[float] = []
        self.kept: list | None = None

    def process(self, batch):
        start = time.perf_counter()
        scored = super().process(batch)
        self.seconds.append(time.perf_counter() - start)
        if self.kept is not None:
            self.kept.append(scored)
            gc.freeze()  # kept for later runs: out of the collector's way in the measured one
        return scored


class TimedWriter(RetryingWriter):
    """The real writer; times each database transaction (in its worker thread)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seconds: list[float] = []

    def _write_sync(self, scored):
        start = time.perf_counter()
        result = super()._write_sync(scored)
        self.seconds.append(time.perf_counter() - start)
        return result


class GcPauses:
    """Collector pauses (ms) while active, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.ms.append(1e3 * (time.perf_counter() - self._start))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self)


def q(values, p: float) -> float:
    """Quantile ``p`` of ``values`` in ms (values in ms), nan when empty."""
    return float(np.quantile(np.asarray(values, dtype=float), p)) if len(values) else float("nan")


def run_pipeline(db_dsn, ruleset, source, detector, rate, seconds, binary=True) -> dict:
    """One ``Pipeline.run`` for ``seconds``; throughput and latency figures."""
    writer = TimedWriter(
        db_dsn,
        source="simulator",
        worker="bench",
        alert_min_band=ruleset.alert.min_band,
        alert_dedup_s=ruleset.alert.dedup_s,
        stats=PipelineStats(),
        binary_copy=binary,
    )
    pipeline = Pipeline(source, detector, writer, rate=rate)
    gen0, det0 = len(source.seconds), len(detector.seconds)
    checkpoints = _checkpoints(db_dsn)
    start = time.perf_counter()
    with GcPauses() as pauses:
        stats = asyncio.run(pipeline.run(duration=seconds))
    wall = time.perf_counter() - start
    lat = list(stats.latencies_ms)
    return {
        "gc": pauses.ms,
        "checkpoints": _checkpoints(db_dsn) - checkpoints,
        "rows": stats.stored,
        "batches": stats.batches,
        "wall": wall,
        "rate": stats.stored / wall,
        "lat": lat,
        "p50": q(lat, 0.5),
        "p99": q(lat, 0.99),
        "gen": [1e3 * t for t in source.seconds[gen0:]],
        "det": [1e3 * t for t in detector.seconds[det0:]],
        "write": [1e3 * t for t in writer.seconds],
        "alerts": stats.alerts_opened,
        "dead": stats.dead,
    }


def merged(runs: list[dict]) -> dict:
    """Several segments of one pipeline setting as one figure (rows and wall time summed)."""
    out = {k: [x for r in runs for x in r[k]] for k in ("gc", "gen", "det", "write", "lat")}
    for k in ("checkpoints", "rows", "batches", "wall", "alerts", "dead"):
        out[k] = sum(r[k] for r in runs)
    out.update(rate=out["rows"] / out["wall"], p50=q(out["lat"], 0.5), p99=q(out["lat"], 0.99))
    return out


def renamed(scored, prefix: str):
    """The batch with ``prefix`` before every tx_id (each anchor stores its own ids)."""
    frame = scored.frame.copy()
    frame["tx_id"] = prefix + frame["tx_id"]
    return dataclasses.replace(scored, frame=frame)


def csv_rows(scored) -> tuple[list[str], bytes]:
    """The columns and CSV of a batch's rows as stored (ts and rule_hits as text)."""
    frame = scored.frame.copy()
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
    hits: list[dict] = [{} for _ in range(len(frame))]
    for r, rule, pts in zip(scored.hits["row"], scored.hits["rule_id"],
                            scored.hits["points"], strict=True):  # fmt: skip
        hits[r][rule] = float(pts)
    frame["rule_hits"] = pd.Series([json.dumps(h) for h in hits], dtype="str")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return list(frame.columns), sink.getvalue().to_pybytes()


def side_by_side(db_dsn, ruleset, kept) -> dict[str, dict]:
    """The kept batches through the four :data:`ANCHORS`, interleaved batch by batch in a
    rotating order, into the tables the worker writes (they grow on). Raw COPY: one COPY +
    commit of a payload prepared beforehand (not timed); writers: ``BatchWriter.write`` of the
    scored batch, payloads built inside (timed). Per anchor: ms per batch and rows."""
    band, dedup = ruleset.alert.min_band, ruleset.alert.dedup_s
    seconds: dict[str, list[float]] = {a: [] for a in ANCHORS}
    rows = dict.fromkeys(ANCHORS, 0)
    with connect(db_dsn) as conn:
        writers = {False: BatchWriter(conn), True: BatchWriter(conn)}
        for i, scored in enumerate(kept):
            for k in range(len(ANCHORS)):
                k = (k + i) % len(ANCHORS)
                anchor, batch = ANCHORS[k], renamed(scored, f"a{k}-")
                if k == 0:
                    names, data = csv_rows(batch)
                    fmt = "csv"
                elif k == 1:
                    names, (data, fmt) = list(DIRECT_COLUMNS), PreparedBatch(batch).direct_tx
                if k <= 1:
                    statement = sql.SQL("COPY transactions ({}) FROM STDIN (FORMAT {})").format(
                        sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(fmt)
                    )
                    t = time.perf_counter()
                    with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
                        copy.write(data)
                    stored = len(batch.frame)
                else:
                    prepared = PreparedBatch(batch, alert_min_band=band, source="simulator",
                                             worker="bench", binary=k == 3)  # fmt: skip
                    t = time.perf_counter()
                    stored = writers[k == 3].write(prepared, alert_dedup_s=dedup).stored
                seconds[anchor].append(1e3 * (time.perf_counter() - t))
                rows[anchor] += stored
    return {a: {"ms": seconds[a], "rows": rows[a]} for a in ANCHORS}


def summed(parts: list[dict]) -> dict:
    """One anchor's rounds as one figure: rows over the time spent in its transactions."""
    ms = [x for p in parts for x in p["ms"]]
    rows, busy = sum(p["rows"] for p in parts), sum(ms) / 1e3
    return {"rows": rows, "batches": len(ms), "wall": busy, "rate": rows / busy,
            "p50": q(ms, 0.5), "p99": q(ms, 0.99)}  # fmt: skip


def orm_rows(kept, limit: int) -> list[dict]:
    """Plain-Python row dicts (with their rule_hits) of the first ``limit`` kept rows."""
    rows: list[dict] = []
    for scored in kept:
        frame = scored.frame
        cols = {c: frame[c].tolist() for c in frame.columns if c != "ts"}
        cols["ts"] = list(frame["ts"].dt.to_pydatetime())
        hits: list[dict] = [{} for _ in range(len(frame))]
        h = scored.hits
        for r, rule, pts in zip(h["row"], h["rule_id"], h["points"], strict=True):
            hits[r][rule] = float(pts)
        for i in range(len(frame)):
            rows.append({**{c: v[i] for c, v in cols.items()}, "rule_hits": hits[i]})
            if len(rows) >= limit:
                return rows
    return rows


def per_row_orm(db_dsn, rows: list[dict], seconds: float) -> dict:
    """``session.add(obj); session.commit()`` per row for ``seconds`` (SQLAlchemy ORM)."""
    try:
        import sqlalchemy as sa
        from sqlalchemy.dialects.postgresql import JSONB
        from sqlalchemy.orm import DeclarativeBase, Session
    except ImportError:
        return per_row_psycopg(db_dsn, rows, seconds)

    class Base(DeclarativeBase):
        pass

    text = sa.Text
    Txn = type(
        "Txn",
        (Base,),
        {
            "__tablename__": "transactions_orm",
            "__table_args__": (sa.PrimaryKeyConstraint("ts", "tx_id"),),
            **{c: sa.Column(text) for c in ("tx_id", "card_id", "customer_id", "terminal_id")},
            "ts": sa.Column(sa.DateTime(timezone=True)),
            **{c: sa.Column(text) for c in ("merchant_category", "currency", "country")},
            **{c: sa.Column(sa.Float) for c in ("amount", "lat", "lon", "risk_score")},
            **{c: sa.Column(text) for c in ("channel", "device_id", "fraud_scenario", "band")},
            "is_fraud": sa.Column(sa.Boolean),
            "rule_hits": sa.Column(JSONB, nullable=False),
            "rule_set_version": sa.Column(text),
            "stored_at": sa.Column(sa.DateTime(timezone=True), server_default=sa.func.now()),
        },
    )
    engine = sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(db_dsn))
    try:
        Base.metadata.create_all(engine)
        done, start = 0, time.perf_counter()
        deadline = start + seconds
        with Session(engine) as session:
            for row in rows:
                session.add(Txn(**row))
                session.commit()
                done += 1
                if time.perf_counter() >= deadline:
                    break
        wall = time.perf_counter() - start
    finally:
        engine.dispose()
    label = f"per-row ORM add+commit (SQLAlchemy {sa.__version__})"
    return {"label": label, "rows": done, "wall": wall, "rate": done / wall}


def per_row_psycopg(db_dsn, rows: list[dict], seconds: float) -> dict:
    """Fallback without SQLAlchemy: one psycopg INSERT + commit per row."""
    cols = list(rows[0])
    with psycopg.connect(db_dsn) as conn:
        conn.execute(
            "CREATE TABLE transactions_orm (LIKE transactions INCLUDING DEFAULTS,"
            " PRIMARY KEY (ts, tx_id))"
        )
        conn.commit()
        insert = sql.SQL("INSERT INTO transactions_orm ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(sql.Placeholder() * len(cols)),
        )
        done, start = 0, time.perf_counter()
        for row in rows:
            conn.execute(insert, [psycopg.types.json.Jsonb(v) if isinstance(v, dict) else v
                                  for v in row.values()])  # fmt: skip
            conn.commit()
            done += 1
            if time.perf_counter() - start >= seconds:
                break
        wall = time.perf_counter() - start
    label = "per-row psycopg INSERT+commit (SQLAlchemy NOT installed: fallback)"
    return {"label": label, "rows": done, "wall": wall, "rate": done / wall}


def _checkpoints(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
    return int(row[0])


def _checkpoint(conn) -> None:
    # Start each phase without a backlog of dirty pages from the previous one (needs
    # superuser or pg_checkpoint; skipped quietly otherwise).
    with contextlib.suppress(psycopg.Error):
        conn.execute("CHECKPOINT")


def _settings(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers", "max_wal_size")
        out = {n: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()[0]
               for n in names}  # fmt: skip
        out["version"] = conn.execute("SHOW server_version").fetchone()[0]
    return out


def bench(args, db_dsn: str) -> None:
    ruleset = load_rules(ROOT / "rules")
    with connect(db_dsn) as conn:
        upgrade(conn)
        record_rule_set(conn, ruleset.version, ruleset.texts, "bench", "accepted")
    pg = _settings(db_dsn)
    load = os.getloadavg()
    print(
        f"machine: nproc {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), "
        f"Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}, "
        f"load average {load[0]:.2f} at start"
    )
    print(
        f"PostgreSQL {pg['version']} at {conninfo.conninfo_to_dict(db_dsn).get('host')}: "
        f"synchronous_commit={pg['synchronous_commit']} fsync={pg['fsync']} "
        f"wal_sync_method={pg['wal_sync_method']} shared_buffers={pg['shared_buffers']} "
        f"max_wal_size={pg['max_wal_size']}"
    )
    if pg["synchronous_commit"] != "on" or pg["fsync"] != "on":
        print("WARNING: commits are not durable on this server; per-row figures are flattered")
    print(
        f"settings: --seconds {args.seconds:g} in {args.rounds} rounds of CSV / binary COPY "
        "segments each followed by the anchors, "
        f"--batch {args.batch:,}, paced {args.pace:,.0f} tx/s in batches of "
        f"{args.paced_batch:,} for {args.paced_seconds:g}s, anchors over {args.storage_batches} "
        f"batches, per-row for {args.orm_seconds:g}s; default rules ({len(ruleset.rules)} rules, "
        f"{len(ruleset.features)} features), simulator seed 1 with default population\n"
    )

    sim = TimedSource(Simulator(seed=1, batch_rows=args.batch), args.batch)
    detector = TimedDetector(ruleset)
    # Warm-up (not measured): first-call costs (compiled feature kernels, caches) are paid
    # once per process; the figures below are of the sustained stream that follows.
    detector.kept = None
    warm = run_pipeline(db_dsn, ruleset, sim, detector, None, args.warmup)
    print(f"warm-up: {warm['rows']:,} rows in {warm['wall']:.1f}s (not in the figures below)")
    detector.kept = []
    with connect(db_dsn) as conn:
        conn.execute(f"TRUNCATE {EMPTIED}")
        _checkpoint(conn)
    # Both settings and the anchors in one run: per round, a worker segment with the CSV COPY
    # and one with the binary COPY (which goes first alternates), then the four anchors over
    # batches of those segments, so each round meets the same server load (2 shared cores).
    segments: dict[bool, list[dict]] = {False: [], True: []}
    rounds: list[dict] = []
    loads: list[float] = []
    per_round = max(1, args.storage_batches // args.rounds)
    for i in range(args.rounds):
        with connect(db_dsn) as conn:  # as every phase: no backlog of the previous one's WAL
            _checkpoint(conn)
        first = len(detector.kept)
        for binary in (False, True) if i % 2 == 0 else (True, False):  # no order bias
            segment = args.seconds / (2 * args.rounds)
            segments[binary].append(
                run_pipeline(db_dsn, ruleset, sim, detector, None, segment, binary)
            )
            loads.append(os.getloadavg()[0])
        fresh = detector.kept[first:]
        rounds.append(side_by_side(db_dsn, ruleset, fresh[:: max(1, len(fresh) // per_round)]))
        loads.append(os.getloadavg()[0])
    before, full = merged(segments[False]), merged(segments[True])
    anchors = {a: summed([r[a] for r in rounds]) for a in ANCHORS}
    kept, detector.kept = detector.kept, None
    with connect(db_dsn) as conn:
        _checkpoint(conn)
    pace = args.pace if args.pace > 0 else 0.7 * full["rate"]
    sim.rows = args.paced_batch
    paced = run_pipeline(db_dsn, ruleset, sim, detector, pace, args.paced_seconds)
    loads.append(os.getloadavg()[0])
    sim.rows = args.batch
    orm = per_row_orm(db_dsn, orm_rows(kept, args.orm_rows), args.orm_seconds)

    sim_span = kept[-1].frame["ts"].max() - kept[0].frame["ts"].min()
    print(
        f"1. end-to-end (binary COPY): {full['rows']:,} rows in {full['batches']} batches, "
        f"{full['wall']:.1f}s wall, simulated span of both settings {sim_span}; "
        f"{full['alerts']:,} alerts opened, {full['dead']} dead letters"
    )
    for label, r in (("max, CSV", before), ("max rate", full), ("paced", paced)):
        parts = ", ".join(
            f"{name} {np.mean(r[key]):.0f} / {q(r[key], 0.99):.0f}"
            for key, name in (("gen", "generate"), ("det", "detect"), ("write", "write (DB tx)"))
        )
        print(f"   per batch, {label:8} mean / p99 ms: {parts}")
        print(
            f"   {'':19} GC pauses: {len(r['gc'])}, longest {max(r['gc'], default=0):.0f} ms, "
            f"total {sum(r['gc']):.0f} ms; server checkpoints during the run: {r['checkpoints']}"
        )
    copy_csv, copy_bin = anchors[ANCHORS[0]], anchors[ANCHORS[1]]
    store_csv, store_bin = anchors[ANCHORS[2]], anchors[ANCHORS[3]]
    w = 56
    print(
        f"\n{'':{w}} {'rows/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'rows':>9} {'/CSV':>6} {'/bin':>6}"
    )
    lines = [
        ("end-to-end, max rate, binary COPY (now)", full),
        ("end-to-end, max rate, CSV COPY (binary off)", before),
        (f"end-to-end, paced at {pace:,.0f} tx/s ({args.paced_batch:,}-row batches)", paced),
        ("(a) raw COPY of the same rows prepared as CSV", copy_csv),
        ("(a) raw COPY of the same rows prepared as binary", copy_bin),
        ("    storage only: BatchWriter.write, binary (now)", store_bin),
        ("    storage only: BatchWriter.write, CSV (binary off)", store_csv),
        (orm["label"], orm),
    ]
    for label, r in lines:
        p50 = f"{r['p50']:8.0f}" if "p50" in r else f"{'-':>8}"
        p99 = f"{r['p99']:8.0f}" if "p99" in r else f"{'-':>8}"
        ratios = f"{r['rate'] / copy_csv['rate']:6.2f} {r['rate'] / copy_bin['rate']:6.2f}"
        print(f"{label[:w]:{w}} {r['rate']:10,.0f} {p50} {p99} {r['rows']:9,} {ratios}")
    print(
        "\n   /CSV, /bin: rate over the raw COPY of the same rows as CSV, as binary.\n"
        "   latency = batch creation (SourceBatch.created_at) -> commit (taken in the writer\n"
        "   thread). At max rate a batch is made while the previous one is written, so it\n"
        "   also waits for that write. Paced: the load the worker carries, the figure that\n"
        f"   matters; over {paced['batches']} batches. A live source would add the batch fill "
        f"time:\n   {args.paced_batch:,} rows / {pace:,.0f} tx/s = "
        f"{args.paced_batch / pace * 1e3:,.0f} ms for the first row of a batch.\n"
        "   (a) and storage only: interleaved batch by batch; rows/s over the time spent in\n"
        "   each one's transactions; p50/p99 are of one batch's transaction."
    )
    by_round = [
        f"{e['rate'] / summed([r[ANCHORS[0]]])['rate']:.2f}"
        for e, r in zip(segments[True], rounds, strict=True)
    ]
    print(f"\n   end to end (binary) / raw CSV COPY, round by round: {', '.join(by_round)}")
    print("\nratios vs targets:")
    r_csv, r_bin = full["rate"] / copy_csv["rate"], full["rate"] / copy_bin["rate"]
    r_before = before["rate"] / copy_csv["rate"]
    r_orm = full["rate"] / orm["rate"]
    print(f"   end-to-end / raw CSV COPY    = {r_csv:.2f}   (target >= 0.8: {_met(r_csv >= 0.8)};"
          f" with CSV COPY: {r_before:.2f})")  # fmt: skip
    print(f"   end-to-end / raw binary COPY = {r_bin:.2f}   (target >= 0.8: {_met(r_bin >= 0.8)})")
    print(
        f"   end-to-end / per-row         = {r_orm:,.0f}    (target >= 100: {_met(r_orm >= 100)})"
    )
    print(f"   paced {pace:,.0f} tx/s: p50 {paced['p50']:.0f} ms, p99 {paced['p99']:.0f} ms "
          f"(target p99 <= 100: {_met(paced['p99'] <= 100)})")  # fmt: skip
    print(
        f"\n(load average {os.getloadavg()[0]:.2f} at end; during the run "
        f"{min(loads):.2f} .. {max(loads):.2f}; the CPU is shared with the server)"
    )
    figure("end to end, max rate", full["rate"], "rows/s", anchor="raw COPY (CSV)", ratio=r_csv)
    figure("end to end, max rate vs binary", full["rate"], "rows/s",
           anchor="raw COPY (binary)", ratio=r_bin)  # fmt: skip
    figure("end to end, max rate, CSV COPY", before["rate"], "rows/s",
           anchor="raw COPY (CSV)", ratio=r_before)  # fmt: skip
    figure("storage only (BatchWriter)", store_bin["rate"], "rows/s", anchor="raw COPY (CSV)",
           ratio=store_bin["rate"] / copy_csv["rate"])  # fmt: skip
    figure(f"paced {pace:,.0f} tx/s, p99 batch -> commit", paced["p99"], "ms",
           anchor="target 100 ms", ratio=paced["p99"] / 100.0)  # fmt: skip


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--seconds", type=float, default=30.0, help="end-to-end run at max rate")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (CSV, binary, anchors)")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured run first")
    parser.add_argument("--pace", type=float, default=10_000.0, help="paced run, tx/s (0: 70%%)")
    parser.add_argument("--paced-batch", type=int, default=1000, help="rows per paced batch")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--storage-batches", type=int, default=40, help="batches for (a)")
    parser.add_argument("--orm-seconds", type=float, default=10.0)
    parser.add_argument("--orm-rows", type=int, default=100_000, help="rows prepared for (b)")
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.warmup, args.paced_seconds = 10.0, 2, 2.0, 6.0
        args.storage_batches, args.orm_seconds, args.orm_rows = 8, 2.0, 5000

    interrupted = False
    try:  # durable commits whatever the server default (own_database): honest figures
        with own_database(args.dsn, "wb_bench") as db_dsn:
            bench(args, db_dsn)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", file=sys.stderr)
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
