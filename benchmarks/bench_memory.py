"""Worker memory over simulated days (prints figures; no pass/fail).

The worker's in-memory path, without the database: the simulator at its default population
and rate -> :class:`~workbench.scoring.detector.Detector` with the rules of ``rules/`` (features
and scoring, ``process`` then ``maintain`` per batch, as the pipeline graph runs it) over
``--days`` simulated days. The storage side is left out: its memory does not grow with the
history (a batch is written and dropped), the feature state does.

Sampled once per simulated day: the process RSS (``/proc/self/status`` VmRSS; its peak is
VmHWM), the bytes of the feature state's arrays (sum of numpy ``nbytes``: window records,
stored rows, value records, due queue, hash tables, the pool of sorted amounts, prepared
successors; the fraud log), and the rows, cards, customers and terminals it holds.

Anchors, side by side in the same run: the RSS the process had once warmed up (imports,
compiled kernels loaded from numba's disk cache, which a subprocess fills first; the
simulator's population: paid once, whatever the history), and the
*live* bytes of the state (records in use x record width, amounts stored x 8): what the same
layout would take with no spare capacity. The state's allocated bytes / live bytes is its
over-allocation.

The entity arrays keep room for a batch of new entities, so larger batches (``--batch
20000``: faster to run) hold more than the default one.

Usage: python benchmarks/bench_memory.py [--days 93] [--batch 1000]
       python benchmarks/bench_memory.py --quick          (10 days, batches of 5,000)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _report import figure

from workbench.features import passes as P
from workbench.features.quantiles import SB_CLASS, SB_FIELDS, SB_N
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.settings import Settings
from workbench.sources.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
DAY_NS = 86400 * 1_000_000_000


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def group_bytes(group) -> dict[str, tuple[int, int]]:
    """Per part of one ``by`` column's window state: (allocated bytes, live bytes)."""
    s = group.state
    # a live key takes 2 buckets of 16 bytes of its hash table (load factor 1/2)
    ent_w = s.ent.shape[1] * 8 + 32
    val_w = (s.vrec.shape[1] + s.mark.shape[1]) * 8 + 32
    out = {
        "entities": (s.ent.nbytes + s.etab.nbytes, s.entities * ent_w),
        "rows": (s.row.nbytes, s.rows * s.row.shape[1] * 8),
        "values": (s.vrec.nbytes + s.mark.nbytes + s.vtab.nbytes, s.values * val_w),
        "queue": (s.queue.nbytes, s.queued * 16),
    }
    if s.sorted_windows:
        n = _amounts_stored(s)
        out["sorted amounts"] = (s.pool.nbytes + s.pool_meta.nbytes, 8 * n)
    spare = sum(sp.array.nbytes for sp in s._spares.values())
    out["prepared successors"] = (spare, 0)
    return out


def _amounts_stored(state) -> int:
    """Amounts held in the sorted blocks of the live entities."""
    high = int(state.meta[P.M_ENTITIES])
    ent = state.ent[:high]
    base = ent.shape[1] - SB_FIELDS * state.sorted_windows
    total = 0
    for k in range(state.sorted_windows):
        b = base + k * SB_FIELDS
        live = ent[:, b + SB_CLASS] > 0  # a block only while its window holds amounts
        total += int(ent[live, b + SB_N].sum())
    return total


def fraud_log_bytes(engine) -> int:
    """Bytes of the time_since_fraud event log."""
    log = engine.frauds
    if log is None:
        return 0
    arrays = [a for d in (log.held, log.fresh) for pair in d.values() for a in pair]
    for ev in log._index.values():
        arrays += [a for a in vars(ev).values() if isinstance(a, np.ndarray)]
    total = sum(a.nbytes for a in arrays)
    return total


def sample(detector: Detector) -> dict:
    """One sample of the process and the feature state."""
    engine = detector.features
    parts: dict[str, list[int]] = {}
    by: dict[str, tuple[int, int, int]] = {}
    for g in engine._groups:
        alloc = live = 0
        for name, (a, lv) in group_bytes(g).items():
            acc = parts.setdefault(name, [0, 0])
            acc[0] += a
            acc[1] += lv
            alloc, live = alloc + a, live + lv
        by[g.by] = (alloc, g.state.entities, g.state.rows)
    flog = fraud_log_bytes(engine)
    parts["fraud log"] = [flog, flog]
    status = proc_status()
    return {
        "rss": status["VmRSS"],
        "hwm": status["VmHWM"],
        "state": sum(a for a, _ in parts.values()),
        "live": sum(lv for _, lv in parts.values()),
        "parts": parts,
        "by": by,
        "rows": engine.state_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=93.0, help="simulated days")
    parser.add_argument(
        "--batch", type=int, help="rows per batch (default: the batch_rows setting, 1,000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="10 simulated days in batches of 5,000"
    )
    args = parser.parse_args()
    days = 10.0 if args.quick else args.days
    if args.batch is None:
        args.batch = 5_000 if args.quick else Settings.load({}).batch_rows

    # numba's disk cache filled in another process first (as `workbench warmup` does at
    # install): the RSS measured here never includes the compiler's own memory
    subprocess.run(
        [sys.executable, "-c", "import sys; from workbench.scoring.warmup import warm_up; "
         "warm_up(sys.argv[1])", str(ROOT / "rules")],
        check=True,
    )  # fmt: skip
    ruleset = load_rules(ROOT / "rules")
    sim = Simulator()
    detector = Detector(ruleset)
    pop, st = sim.population, sim.settings
    print(
        f"population: {pop.n_customers:,} customers, {pop.n_cards:,} cards, "
        f"{pop.n_terminals:,} terminals; rate {st.rate:g} tx/s at speed-up "
        f"{st.sim_speedup:g} = {st.rate * 86400 / st.sim_speedup:,.0f} rows per simulated "
        f"day; {len(ruleset.features)} features, {len(ruleset.rules)} rules"
    )
    print(f"batches of {args.batch:,} rows; {days:g} simulated days; no database")

    # warm-up: compile/load every kernel, so the baseline is what the process costs at rest
    first = sim.next_batch(args.batch)
    start_ns = int(first.frame["ts"].min().value)
    detector.process(first)
    detector.maintain()
    base = sample(detector)
    print(f"after the first batch (kernels loaded): RSS {base['rss'] / MB:,.0f} MB")

    rows_in, day, samples, worst, worst_cpu = len(first.frame), 1, [], 0.0, 0.0
    t0 = time.perf_counter()
    while day <= days:
        batch = sim.next_batch(args.batch)
        detector.process(batch)
        t1, c1 = time.perf_counter(), time.process_time()
        detector.maintain()  # eviction and array growth: the one pause between batches
        worst = max(worst, time.perf_counter() - t1)
        worst_cpu = max(worst_cpu, time.process_time() - c1)
        rows_in += len(batch.frame)
        newest = int(batch.frame["ts"].max().value)
        while day <= days and newest - start_ns >= day * DAY_NS:
            s = sample(detector)
            s["day"], s["rows_in"] = day, rows_in
            samples.append(s)
            day += 1
    elapsed = time.perf_counter() - t0
    load = os.getloadavg()

    print(
        f"\n{rows_in:,} rows in {elapsed:.1f} s ({rows_in / elapsed:,.0f} rows/s, features + "
        f"rules); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print(
        f"{'day':>4} {'rows held':>11} {'cards':>7} {'terminals':>9} {'state MB':>9} "
        f"{'live MB':>8} {'RSS MB':>7} {'peak MB':>8}"
    )
    for s in samples:
        if s["day"] % 10 == 0 or s["day"] in (1, len(samples)):
            card = s["by"].get("card_id", (0, 0, 0))
            term = s["by"].get("terminal_id", (0, 0, 0))
            print(
                f"{s['day']:>4} {s['rows']:>11,} {card[1]:>7,} {term[1]:>9,} "
                f"{s['state'] / MB:>9.1f} {s['live'] / MB:>8.1f} {s['rss'] / MB:>7.0f} "
                f"{s['hwm'] / MB:>8.0f}"
            )
    last = samples[-1]
    peak = max(s["hwm"] for s in samples)
    print(f"\npeak RSS {peak / MB:,.0f} MB, final RSS {last['rss'] / MB:,.0f} MB")
    print(
        f"   longest maintain() between batches: {worst * 1e3:,.0f} ms wall, "
        f"{worst_cpu * 1e3:,.0f} ms CPU (the longest of each)"
    )
    print(
        f"   at rest (imports, kernels, population, first batch): {base['rss'] / MB:,.0f} MB; "
        f"growth after it: {(peak - base['rss']) / MB:,.0f} MB"
    )
    print(f"\nfeature state at day {last['day']} (allocated vs live):")
    for name, (a, lv) in last["parts"].items():
        print(f"   {name:<20} {a / MB:>8.1f} MB  live {lv / MB:>8.1f} MB")
    print(f"   {'total':<20} {last['state'] / MB:>8.1f} MB  live {last['live'] / MB:>8.1f} MB")
    print("\nper entity column (state bytes / entities held):")
    per = {}
    for col, (alloc, ents, rows) in last["by"].items():
        per[col] = alloc / max(ents, 1)
        print(
            f"   {col:<12} {alloc / MB:>8.1f} MB, {ents:>7,} held, {rows:>10,} rows: "
            f"{per[col]:>10,.0f} bytes per entity, {alloc / max(rows, 1):>5.0f} bytes per row"
        )
    card, term = per.get("card_id", 0.0), per.get("terminal_id", 0.0)
    cards, terms = last["by"]["card_id"][1], last["by"]["terminal_id"][1]
    print(
        f"   the whole state over the cards: {last['state'] / cards:,.0f} bytes per card; over"
        f" the terminals: {last['state'] / terms:,.0f} bytes per terminal"
    )
    print(
        f"   the customer windows are held per customer ({per.get('customer_id', 0):,.0f} "
        f"bytes each); the fraud log holds {last['parts']['fraud log'][0] / 1024:,.0f} kB"
    )
    over = last["state"] / max(last["live"], 1)
    figure("worker peak RSS", peak / MB, "MB", anchor="1 GB target", ratio=peak / (1 << 30))
    figure("feature state", last["state"] / MB, "MB", anchor="live bytes", ratio=over)
    figure("state bytes per card", card, "B")
    figure("state bytes per terminal", term, "B")


if __name__ == "__main__":
    main()
