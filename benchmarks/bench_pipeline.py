"""End-to-end pipeline throughput against a real PostgreSQL, side by side in one run.

1. The real worker (simulator -> features -> default rules -> COPY into the real schema):
   ``Pipeline`` + ``Detector`` + ``RetryingWriter`` as fast as possible for ``--seconds``,
   then paced at ``--paced-fraction`` of that rate for ``--paced-seconds`` (the stream goes
   on: same simulator, same feature state).
2. (a) Raw COPY: the rows of run 1, prepared in advance as CSV (scores, ``rule_hits`` JSON
   text; preparing is not timed), COPYed straight into the emptied ``transactions`` (same
   partitions and indexes), one COPY + commit per batch: no staging, no idempotency, no
   alerts. For reference, the same batches through a ``BatchWriter`` alone (storage only).
3. (b) "Like the seed project": one SQLAlchemy ORM object per row, ``session.add`` +
   ``session.commit`` each, into a plain table with the same primary key (psycopg per-row
   INSERT + commit when SQLAlchemy is missing; the output says which).

Latency is per batch, from creation to commit. The headline is the paced run (a load the
worker carries); the max-rate figure includes queueing behind the write in flight.

The script creates its own database ``wb_bench_<pid>`` on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``), migrates it, and drops it at the end (WITH (FORCE)), also on Ctrl-C.
Prints figures and ratios; no pass/fail.

Usage: python benchmarks/bench_pipeline.py [--seconds 30] [--batch 5000] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import conninfo, sql

from workbench.pipeline.graph import Pipeline
from workbench.pipeline.stats import PipelineStats
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator
from workbench.storage import BatchWriter, connect, record_rule_set, upgrade

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
EMPTIED = "transactions, transaction_ids, alerts, alert_hits, dead_letters, pipeline_stats"


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


def run_pipeline(db_dsn, ruleset, source, detector, rate, seconds) -> dict:
    """One ``Pipeline.run`` for ``seconds``; throughput and latency figures."""
    writer = TimedWriter(
        db_dsn,
        source="simulator",
        worker="bench",
        alert_min_band=ruleset.alert.min_band,
        alert_dedup_s=ruleset.alert.dedup_s,
        stats=PipelineStats(),
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
        "p50": q(lat, 0.5),
        "p99": q(lat, 0.99),
        "gen": [1e3 * t for t in source.seconds[gen0:]],
        "det": [1e3 * t for t in detector.seconds[det0:]],
        "write": [1e3 * t for t in writer.seconds],
        "alerts": stats.alerts_opened,
        "dead": stats.dead,
    }


def prepare_raw(kept) -> list[tuple[list[str], int, bytes]]:
    """Per batch: the columns and CSV of its rows as stored (not timed: prepared in advance)."""
    prepared = []
    for scored in kept:
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
        prepared.append((list(frame.columns), len(frame), sink.getvalue().to_pybytes()))
    return prepared


def raw_copy(db_dsn, prepared) -> dict:
    """COPY the prepared rows straight into the emptied ``transactions``, one commit a batch."""
    with connect(db_dsn) as conn:
        conn.execute(f"TRUNCATE {EMPTIED}")
        _checkpoint(conn)
        columns = sql.SQL(", ").join(map(sql.Identifier, prepared[0][0]))
        statement = sql.SQL("COPY transactions ({}) FROM STDIN (FORMAT csv)").format(columns)
        seconds, stored = [], 0
        start = time.perf_counter()
        for _names, rows, data in prepared:
            t = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
                copy.write(data)
            stored += rows
            seconds.append(1e3 * (time.perf_counter() - t))
        wall = time.perf_counter() - start
    return {"rows": stored, "batches": len(prepared), "wall": wall, "rate": stored / wall,
            "p50": q(seconds, 0.5), "p99": q(seconds, 0.99)}  # fmt: skip


def storage_only(db_dsn, ruleset, kept) -> dict:
    """Write the kept scored batches with one ``BatchWriter`` (as the pipeline does) into the
    emptied tables."""
    with connect(db_dsn) as conn:
        writer = BatchWriter(conn)
        conn.execute(f"TRUNCATE {EMPTIED}")
        _checkpoint(conn)
        seconds, stored = [], 0
        start = time.perf_counter()
        for scored in kept:
            t = time.perf_counter()
            stored += writer.write(
                scored,
                alert_min_band=ruleset.alert.min_band,
                alert_dedup_s=ruleset.alert.dedup_s,
                source="simulator",
                worker="bench",
            ).stored
            seconds.append(1e3 * (time.perf_counter() - t))
        wall = time.perf_counter() - start
    return {"rows": stored, "batches": len(kept), "wall": wall, "rate": stored / wall,
            "p50": q(seconds, 0.5), "p99": q(seconds, 0.99)}  # fmt: skip


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
        f"settings: --seconds {args.seconds:g}, --batch {args.batch:,}, paced "
        f"{args.paced_fraction:.0%} of max for {args.paced_seconds:g}s, per-row for "
        f"{args.orm_seconds:g}s; default rules ({len(ruleset.rules)} rules, "
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
    full = run_pipeline(db_dsn, ruleset, sim, detector, None, args.seconds)
    kept, detector.kept = detector.kept, None
    pace = args.paced_fraction * full["rate"]
    with connect(db_dsn) as conn:  # as every phase: no backlog of the previous one's WAL
        _checkpoint(conn)
    paced = run_pipeline(db_dsn, ruleset, sim, detector, pace, args.paced_seconds)
    copy = raw_copy(db_dsn, prepare_raw(kept))
    store = storage_only(db_dsn, ruleset, kept)
    orm = per_row_orm(db_dsn, orm_rows(kept, args.orm_rows), args.orm_seconds)

    sim_span = kept[-1].frame["ts"].max() - kept[0].frame["ts"].min()
    print(
        f"1. end-to-end: {full['rows']:,} rows in {full['batches']} batches, "
        f"{full['wall']:.1f}s wall, simulated span {sim_span}; "
        f"{full['alerts']:,} alerts opened, {full['dead']} dead letters"
    )
    for label, r in (("max rate", full), ("paced", paced)):
        parts = ", ".join(
            f"{name} {np.mean(r[key]):.0f} / {q(r[key], 0.99):.0f}"
            for key, name in (("gen", "generate"), ("det", "detect"), ("write", "write (DB tx)"))
        )
        print(f"   per batch, {label:8} mean / p99 ms: {parts}")
        print(
            f"   {'':19} GC pauses: {len(r['gc'])}, longest {max(r['gc'], default=0):.0f} ms, "
            f"total {sum(r['gc']):.0f} ms; server checkpoints during the run: {r['checkpoints']}"
        )
    w = 50
    print(f"\n{'':{w}} {'rows/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'rows':>9} {'vs e2e':>7}")
    e2e = full["rate"]
    lines = [
        ("end-to-end, as fast as possible (rate=None)", full),
        (f"end-to-end, paced at {pace:,.0f} tx/s", paced),
        ("(a) raw COPY of the same rows, prepared", copy),
        ("    storage only: BatchWriter.write of the same batches", store),
        (orm["label"], orm),
    ]
    for label, r in lines:
        p50 = f"{r['p50']:8.0f}" if "p50" in r else f"{'-':>8}"
        p99 = f"{r['p99']:8.0f}" if "p99" in r else f"{'-':>8}"
        print(f"{label:{w}} {r['rate']:10,.0f} {p50} {p99} {r['rows']:9,} {e2e / r['rate']:6.2f}x")
    print(
        "\n   latency = batch creation (SourceBatch.created_at) -> commit (taken in the writer\n"
        "   thread). At rate=None a batch is made while the previous one is written, so it\n"
        "   also waits for that write. Paced: the load the worker carries, the figure that\n"
        f"   matters; over {paced['batches']} batches (with n < 100, p99 ~ max). A live source "
        f"would add\n   the batch fill time: {args.batch:,} rows / {pace:,.0f} tx/s = "
        f"{args.batch / pace * 1e3:,.0f} ms for the first row of a batch.\n"
        "   (a) and storage only: p50/p99 are of one batch's transaction."
    )
    print("\nratios vs targets:")
    r_copy, r_orm = e2e / copy["rate"], e2e / orm["rate"]
    print(f"   end-to-end / raw COPY = {r_copy:.2f}   (target >= 0.6: {_met(r_copy >= 0.6)})")
    print(f"   end-to-end / per-row  = {r_orm:,.0f}    (target >= 100: {_met(r_orm >= 100)})")
    for label, r in (("paced (headline)", paced), ("max rate", full)):
        spread = r["p99"] / r["p50"]
        print(
            f"   latency p99 / p50, {label:16} = {r['p99']:.0f} / {r['p50']:.0f} ms = "
            f"{spread:.1f}   (target <= 2: {_met(spread <= 2)})"
        )
    print(f"\n(load average {os.getloadavg()[0]:.2f} at end; the CPU is shared with the server)")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("WORKBENCH_BENCH_DSN", DEFAULT_DSN))
    parser.add_argument("--seconds", type=float, default=30.0, help="end-to-end run at max rate")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured run first")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--paced-fraction", type=float, default=0.7)
    parser.add_argument("--orm-seconds", type=float, default=10.0)
    parser.add_argument("--orm-rows", type=int, default=100_000, help="rows prepared for (b)")
    args = parser.parse_args()

    name = f"wb_bench_{os.getpid()}"
    db_dsn = conninfo.make_conninfo(args.dsn, dbname=name)
    # SIGTERM takes the same path as Ctrl-C: unwind, then drop the database.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with psycopg.connect(args.dsn, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # Durable commits whatever the server default: the figures must be honest.
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(sql.Identifier(name))
        )
    interrupted = False
    try:
        bench(args, db_dsn)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the drop
        with psycopg.connect(args.dsn, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        print(f"(dropped database {name})")
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
