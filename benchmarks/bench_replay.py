"""Replaying a CSV file through the real worker against a plain COPY of the same file, side by
side in one run.

A CSV file is written by the simulator (``write_dataset``, seed 1, default population), with
``--hostile-every N`` one hostile line after every N rows (an unclosed quote, a wrong field
count, a 3,000-character card_id, a bad amount in turn, and a repeated line: a duplicate).
Then, round by round (each run on the emptied tables of one migrated database, after a
CHECKPOINT):

(a) the real worker as ``workbench run --source replay FILE`` / ``workbench replay FILE`` runs
    it: ``build_pipeline`` (ReplaySource + Pipeline + Detector with the default rules +
    RetryingWriter, hot reload and list follower attached) with the source options of
    ``run_cmd.replay_options``, as fast as possible; rows/s from building the pipeline to the
    last commit, and ``in = stored + duplicates + dead letters`` checked against the counts and
    against the rows in the database. Twice: with ``batch_rows`` set to 1,000 (the old default
    applied as it was) and at the default settings (the batch size the replay chooses).
(b) the anchor: ``COPY replay_anchor FROM STDIN (FORMAT csv, HEADER)`` of the clean file's
    bytes, one COPY and one commit. ``replay_anchor`` is a plain (not partitioned) table with
    the file's 15 columns typed as ``transactions`` types them (ids text COLLATE "C",
    timestamptz, numeric(14,2), double, boolean), PRIMARY KEY (tx_id) (the identity
    ``transaction_ids`` keeps) and the two indexes ``transactions`` has on these columns,
    (card_id, ts) and (ts). Run before and after each worker run; each ratio is to the mean
    of the two anchors next to it (the load of a shared machine moves within seconds), and the
    figures are medians over the rounds. A hostile file cannot be COPYed (COPY refuses it
    whole): the anchor always loads the clean file, the same good rows.
(c) the reader alone: ``ReplaySource.next_batch`` until the end, at 1,000 rows and at the
    chosen size.

The script creates its own database ``wb_bench_replay_<pid>`` on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``) and drops it at the end (WITH (FORCE)), also on Ctrl-C.

Usage: python benchmarks/bench_replay.py [--rows 300000] [--rounds 3] [--hostile-every 0]
       python benchmarks/bench_replay.py --quick        (<= 60 s)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from _db import admin_dsn, own_database
from _report import figure

from workbench.cli.run_cmd import replay_options
from workbench.pipeline.worker import build_pipeline, run_with_status
from workbench.settings import Settings
from workbench.sources.replay import ReplaySource, write_dataset
from workbench.sources.simulator import Simulator
from workbench.storage import connect, upgrade

ROOT = Path(__file__).resolve().parents[1]
EMPTIED = "transactions, transaction_ids, alerts, alert_hits, dead_letters, pipeline_stats"
ANCHOR = """
CREATE TABLE replay_anchor (
    tx_id text COLLATE "C" PRIMARY KEY,
    ts timestamptz NOT NULL,
    card_id text COLLATE "C" NOT NULL,
    customer_id text, terminal_id text, merchant_category text,
    amount numeric(14, 2) NOT NULL,
    currency text, country text, lat double precision, lon double precision,
    channel text, device_id text, is_fraud boolean, fraud_scenario text
);
CREATE INDEX replay_anchor_card_ts ON replay_anchor (card_id, ts);
CREATE INDEX replay_anchor_ts ON replay_anchor (ts);
"""
OLD_DEFAULT = 1000


def write_files(rows: int, hostile_every: int, folder: Path) -> tuple[Path, Path, int]:
    """The clean file, the file replayed (the clean one, or a copy with hostile lines), and
    the number of hostile lines (duplicates included)."""
    sim = Simulator(seed=1, batch_rows=10_000)

    def batches():
        left = rows
        while left > 0:
            frame = sim.next_batch(min(left, 10_000)).frame
            left -= len(frame)
            yield frame

    clean = folder / "replay.csv"
    write_dataset(batches(), clean)
    if not hostile_every:
        return clean, clean, 0
    hostile = folder / "replay_hostile.csv"
    kinds = 0
    with open(clean, "rb") as src, open(hostile, "wb") as out:
        out.write(src.readline())
        for i, line in enumerate(src, 1):
            out.write(line)
            if i % hostile_every == 0:
                out.write(_hostile(line, kinds))
                kinds += 1
    return clean, hostile, kinds


def _hostile(line: bytes, k: int) -> bytes:
    fields = line.rstrip(b"\r\n").split(b",")
    fields[0] = fields[0] + b"-bad%d" % k
    kind = k % 5
    if kind == 0:  # an unclosed quote
        fields[2] = b'"' + fields[2]
    elif kind == 1:  # a field too many
        fields.append(b"EXTRA")
    elif kind == 2:  # an id PostgreSQL's index could not hold
        fields[2] = b"c" * 3000
    elif kind == 3:  # amounts that are not money
        fields[6] = (b"12.3.4", b"-5.00", b"1e400", b"lots")[k // 5 % 4]
    else:  # the line just read, again: a duplicate
        return line
    return b",".join(fields) + b"\n"


def empty(db_dsn: str) -> None:
    with connect(db_dsn) as conn:
        conn.execute(f"TRUNCATE {EMPTIED}, replay_anchor")
        # Each run starts without a backlog of dirty pages from the previous one (needs
        # superuser or pg_checkpoint; skipped quietly otherwise).
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")


def anchor_copy(db_dsn: str, clean: Path) -> dict:
    """One ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the file's bytes, one commit."""
    empty(db_dsn)
    data = clean.read_bytes()  # read before the clock starts: the anchor pays no file I/O
    # Raw psycopg: COPY is the anchor itself.
    with psycopg.connect(db_dsn) as conn:
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY replay_anchor FROM STDIN (FORMAT csv, HEADER)") as copy,
        ):
            for at in range(0, len(data), 1 << 20):
                copy.write(data[at : at + (1 << 20)])
        conn.commit()
        wall = time.perf_counter() - start
        rows = conn.execute("SELECT count(*) FROM replay_anchor").fetchone()[0]
    return {"rows": rows, "wall": wall, "rate": rows / wall}


def worker(db_dsn: str, path: Path, settings: Settings) -> dict:
    """The worker as ``workbench run --source replay FILE`` builds and runs it."""
    empty(db_dsn)
    start = time.perf_counter()
    options = replay_options(str(path), settings, rate=None)
    pipeline = build_pipeline(settings, db_dsn, source="replay", source_options=options)

    async def main():
        return await run_with_status(pipeline, duration=None, status=None)

    stats = asyncio.run(main())
    wall = time.perf_counter() - start
    with connect(db_dsn) as conn:
        in_db = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
        dead_db = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    balanced = stats.records == stats.stored + stats.duplicates + stats.dead
    return {
        "batch": options["batch_rows"],
        "records": stats.records,
        "stored": stats.stored,
        "duplicates": stats.duplicates,
        "dead": stats.dead,
        "in_db": in_db,
        "dead_db": dead_db,
        "balanced": balanced and in_db == stats.stored and dead_db == stats.dead,
        "batches": stats.batches,
        "wall": wall,
        "rate": stats.records / wall,
    }


def reader(path: Path, settings: Settings) -> dict:
    """``ReplaySource.next_batch`` alone, with the options the worker gets."""
    options = replay_options(str(path), settings, rate=None)
    start = time.perf_counter()
    records = 0
    with ReplaySource(**options) as src:
        while (batch := src.next_batch()) is not None:
            records += batch.records
    wall = time.perf_counter() - start
    return {"batch": options["batch_rows"], "records": records, "wall": wall,
            "rate": records / wall}  # fmt: skip


def bench(args, db_dsn: str, folder: Path) -> None:
    with connect(db_dsn) as conn:
        upgrade(conn)
        conn.execute(ANCHOR)
    clean, replayed, hostile = write_files(args.rows, args.hostile_every, folder)
    settings = Settings.load({}).replace(rules_dir=str(ROOT / "rules"))
    old = settings.replace(batch_rows=OLD_DEFAULT)
    print(
        f"machine: nproc {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), "
        f"Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    size = replayed.stat().st_size
    print(
        f"file: {args.rows:,} simulated rows + {hostile:,} hostile lines, {size / 1e6:.1f} MB "
        f"({replayed.name}); default rules; {args.rounds} round(s)\n"
    )
    # Warm-up (not measured): compiled kernels and caches are paid once per process.
    warm = folder / "warm.csv"
    with open(clean, "rb") as src, open(warm, "wb") as out:
        out.writelines(line for _, line in zip(range(20_001), src, strict=False))
    worker(db_dsn, warm, settings)
    rows: list[tuple[str, dict, dict | None]] = []
    for _ in range(args.rounds):
        before = anchor_copy(db_dsn, clean)
        for label, cfg in ((f"batch_rows={OLD_DEFAULT} (old default)", old),
                           ("default settings (chosen)", settings)):  # fmt: skip
            w = worker(db_dsn, replayed, cfg)
            w["load"] = os.getloadavg()[0]
            after = anchor_copy(db_dsn, clean)
            # Each worker run is flanked by two anchors: the load moves within seconds.
            a = {"rate": (before["rate"] + after["rate"]) / 2,
                 "pair": (before["rate"], after["rate"])}  # fmt: skip
            rows.append((label, w, a))
            before = after
        for label, cfg in ((f"reader alone, batch {OLD_DEFAULT}", old),
                           ("reader alone, chosen", settings)):  # fmt: skip
            rows.append((label, reader(replayed, cfg), None))

    w0 = 36
    print(f"{'':{w0}} {'batch':>6} {'rows/s':>9} {'COPY/s':>9} {'ratio':>6} {'load':>5}  check")
    for label, r, a in rows:
        copy = f"{a['rate']:9,.0f}" if a else f"{'-':>9}"
        ratio = f"{r['rate'] / a['rate']:6.2f}" if a else f"{'-':>6}"
        load = f"{r['load']:5.2f}" if "load" in r else f"{'':5}"
        check = f"[{a['pair'][0]:,.0f} / {a['pair'][1]:,.0f}] " if a else ""
        if "balanced" in r:
            check += (
                f"in {r['records']:,} = stored {r['stored']:,} + dup {r['duplicates']:,} + "
                f"dead {r['dead']:,} ({'ok' if r['balanced'] else 'MISMATCH'}, "
                f"{r['batches']} batches)"
            )
        print(f"{label:{w0}} {r['batch']:6,} {r['rate']:9,.0f} {copy} {ratio} {load}  {check}")
    print(
        "\n   worker rows/s: records in / (pipeline built .. last commit); COPY/s: the mean of\n"
        "   the anchor runs just before and just after it (rows / COPY + commit), both shown\n"
        "   in brackets; ratio = worker / that mean."
    )

    def median(label: str, key: str = "rate") -> float:
        return float(np.median([r[key] for lab, r, _ in rows if lab == label]))

    def median_ratio(label: str) -> float:
        return float(np.median([r["rate"] / a["rate"] for lab, r, a in rows if lab == label]))

    old_l, new_l = rows[0][0], rows[1][0]
    copy_rate = float(np.median([x for _, _, a in rows if a for x in a["pair"]]))
    load = os.getloadavg()[0]
    ratios = [f"{r['rate'] / a['rate']:.2f}" for lab, r, a in rows if lab == new_l]
    print(
        f"\nratio at the default settings: median {median_ratio(new_l):.2f} over "
        f"{len(ratios)} round(s) ({', '.join(ratios)}); target >= 0.6. Figures below: medians."
    )
    print(f"(load average {load:.2f} at end; the CPU is shared with the server)")
    figure("raw COPY of the file (anchor)", copy_rate, "rows/s")
    figure("replay, batch_rows=1000", median(old_l), "rows/s",
           anchor="raw COPY", ratio=median_ratio(old_l))  # fmt: skip
    figure("replay, default settings", median(new_l), "rows/s",
           anchor="raw COPY", ratio=median_ratio(new_l))  # fmt: skip
    figure("replay reader alone, default", median("reader alone, chosen"), "rows/s",
           anchor="raw COPY", ratio=median("reader alone, chosen") / copy_rate)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hostile-every", type=int, default=0, metavar="N",
                        help="a hostile line after every N rows (0: none)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="60k rows, one round (<= 60 s)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = 60_000, 1

    interrupted = False
    try:  # durable commits whatever the server default (own_database): honest figures
        with (
            own_database(args.dsn, "wb_bench_replay") as db_dsn,
            tempfile.TemporaryDirectory(prefix="bench_replay_") as folder,
        ):
            bench(args, db_dsn, Path(folder))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", file=sys.stderr)
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
