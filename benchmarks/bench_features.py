"""Feature throughput, measured side by side in one run (prints figures; no pass/fail).

1. FeatureEngine with 14 of the features of rules/default.yaml (those the per-row version
   below computes), streamed in batches (CPU time, best of --repeat); and the per-batch times
   when the state maintenance is done inside ``compute`` (default) or deferred to
   ``maintain()`` between batches.
2. A per-row plain-Python streaming version of the same 14 features (deques per entity and
   window, running sums, dicts for novelty, last row per card), on the same batches.
3. Per-feature check that both give the same values on the measured rows.
4. With ``--ages A,B,...``: instead of 1-3, FeatureEngine throughput after A, B, ... simulated
   days of history held (young vs old state: windows of 30 days, lagged a week, fill up as the
   history ages), side by side, with the ratio of each to the youngest.

Usage: python benchmarks/bench_features.py [--batches N] [--warmup N] [--batch N] [--repeat N]
       python benchmarks/bench_features.py --ages 3,38 [--batches N] [--batch N] [--repeat N]
                                           [--threads 2]
       python benchmarks/bench_features.py --quick   (4 measured batches, 6 of warm-up, best of 2)
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np
import pandas as pd
from _report import figure

from workbench.features import PREVIOUS_LOOKBACK_S, FeatureEngine
from workbench.rules import load_rules
from workbench.sources.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000
MIN, HOUR, DAY = 60 * NS, 3600 * NS, 86400 * NS


def haversine_km(lat1, lon1, lat2, lon2) -> float:
    """Same formula as workbench.features.outputs.haversine, on Python floats."""
    if lat1 != lat1 or lon1 != lon1 or lat2 != lat2 or lon2 != lon2:
        return math.nan
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


class PerRowFeatures:
    """The 14 default features, one row at a time, as a plain-Python stream processor.

    Hard-coded to rules/default.yaml (windows 10m/1h/30d by card, 30d by customer,
    is_new 30d, previous-row geo, 28d fraud with 7d label delay by terminal). Rows must come
    in ts order; rows sharing a ts are all computed before any of them is inserted (the
    insertion of the current ts group is deferred until a newer ts arrives, across batches).
    """

    NAMES = (
        "card_tx_10m",
        "card_tx_1h",
        "card_tx_30d",
        "card_terminals_1h",
        "cust_avg_30d",
        "cust_std_30d",
        "card_avg_30d",
        "card_new_device",
        "card_new_country",
        "card_new_terminal",
        "card_kmh",
        "card_km",
        "terminal_fraud_rate_28d",
        "terminal_fraud_28d",
    )
    W10M, W1H, W30D = 10 * MIN, HOUR, 30 * DAY
    FW, FD = 28 * DAY, 7 * DAY
    LOOKBACK = int(PREVIOUS_LOOKBACK_S * NS)

    def __init__(self):
        self.card_10m: dict = {}  # card -> deque[ts]
        self.card_1h: dict = {}  # card -> [deque[(ts, terminal)], Counter]
        self.card_30d: dict = {}  # card -> [deque[(ts, cents)], sum]
        self.cust_30d: dict = {}  # customer -> [deque[(ts, cents, cents²)], sum, sum sq]
        self.seen: dict = {}  # (which, card, value) -> last ts
        self.last: dict = {}  # card -> (ts, lat, lon)
        self.term: dict = {}  # terminal -> [pending deque[(ts, label)], active deque, fraud, known]
        self.pending: list = []  # rows of the current ts group, inserted when ts moves on
        self.pending_ts = None
        self.newest = None

    def _insert(self, r) -> None:
        ts, card, cust, term, dev, ctry, cents, lat, lon, label = r
        self.card_10m.setdefault(card, deque()).append(ts)
        st = self.card_1h.get(card)
        if st is None:
            st = self.card_1h[card] = [deque(), Counter()]
        st[0].append((ts, term))
        if term is not None:
            st[1][term] += 1
        st = self.card_30d.get(card)
        if st is None:
            st = self.card_30d[card] = [deque(), 0]
        st[0].append((ts, cents))
        st[1] += cents
        st = self.cust_30d.get(cust)
        if st is None:
            st = self.cust_30d[cust] = [deque(), 0, 0]
        sq = cents * cents
        st[0].append((ts, cents, sq))
        st[1] += cents
        st[2] += sq
        seen = self.seen
        if dev is not None:
            seen[(0, card, dev)] = ts
        if ctry is not None:
            seen[(1, card, ctry)] = ts
        if term is not None:
            seen[(2, card, term)] = ts
        self.last[card] = (ts, lat, lon)
        st = self.term.get(term)
        if st is None:
            st = self.term[term] = [deque(), deque(), 0, 0]
        st[0].append((ts, label))

    def process(self, batch: pd.DataFrame) -> dict[str, list]:
        ts_list = batch["ts"].array.asi8.tolist()
        amount = batch["amount"].to_numpy(dtype=np.float64, na_value=np.nan).tolist()
        lab = batch["is_fraud"].astype("boolean")
        labels = np.where(lab.isna().to_numpy(), -1, lab.fillna(False).to_numpy(dtype=bool))
        cols = zip(
            ts_list,
            batch["card_id"].tolist(),
            batch["customer_id"].tolist(),
            batch["terminal_id"].tolist(),
            batch["device_id"].tolist(),
            batch["country"].tolist(),
            amount,
            batch["lat"].to_numpy(dtype=np.float64, na_value=np.nan).tolist(),
            batch["lon"].to_numpy(dtype=np.float64, na_value=np.nan).tolist(),
            labels.tolist(),
            strict=True,
        )
        out = {k: [] for k in self.NAMES}
        (
            o_10m,
            o_1h,
            o_30d,
            o_terms,
            o_cavg,
            o_cstd,
            o_kavg,
            o_dev,
            o_ctry,
            o_term,
            o_kmh,
            o_km,
            o_frate,
            o_fcount,
        ) = out.values()
        seen, nan = self.seen, math.nan
        W10M, W1H, W30D, FW, FD = self.W10M, self.W1H, self.W30D, self.FW, self.FD
        for t, card, cust, term, dev, ctry, a, lat, lon, label in cols:
            if self.newest is not None and t < self.newest:
                raise ValueError("per-row processor needs rows in ts order")
            self.newest = t
            if self.pending_ts is not None and t != self.pending_ts:
                for r in self.pending:
                    self._insert(r)
                self.pending.clear()
            self.pending_ts = t
            cents = round(a * 100.0) if a == a else 0
            self.pending.append((t, card, cust, term, dev, ctry, cents, lat, lon, label))

            # velocity of the card
            d = self.card_10m.get(card)
            if d is not None:
                while d and d[0] < t - W10M:
                    d.popleft()
                o_10m.append(float(len(d)))
            else:
                o_10m.append(0.0)
            st = self.card_1h.get(card)
            if st is not None:
                d, cnt = st
                while d and d[0][0] < t - W1H:
                    _, old = d.popleft()
                    if old is not None:
                        cnt[old] -= 1
                        if not cnt[old]:
                            del cnt[old]
                o_1h.append(float(len(d)))
                o_terms.append(float(len(cnt)))
            else:
                o_1h.append(0.0)
                o_terms.append(0.0)
            st = self.card_30d.get(card)
            if st is not None:
                d = st[0]
                while d and d[0][0] < t - W30D:
                    st[1] -= d.popleft()[1]
                n = len(d)
                o_30d.append(float(n))
                o_kavg.append(st[1] / n / 100.0 if n else nan)
            else:
                o_30d.append(0.0)
                o_kavg.append(nan)

            # spending profile of the customer
            st = self.cust_30d.get(cust)
            n = 0
            if st is not None:
                d = st[0]
                while d and d[0][0] < t - W30D:
                    _, c, sq = d.popleft()
                    st[1] -= c
                    st[2] -= sq
                n = len(d)
            if n:
                s1, s2 = st[1], st[2]
                o_cavg.append(s1 / n / 100.0)
                var = max(n * s2 - s1 * s1, 0) / (n * n)  # exact ints, one rounding
                o_cstd.append(math.sqrt(var) / 100.0)
            else:
                o_cavg.append(nan)
                o_cstd.append(nan)

            # novelty for the card (rows inserted later have ts < t)
            for which, value, o in ((0, dev, o_dev), (1, ctry, o_ctry), (2, term, o_term)):
                if value is None:
                    o.append(False)
                else:
                    prev = seen.get((which, card, value))
                    o.append(prev is None or prev < t - W30D)

            # geography: the card's last row with ts < t
            prev = self.last.get(card)
            if prev is not None and prev[0] >= t - self.LOOKBACK:
                km = haversine_km(prev[1], prev[2], lat, lon)
                o_km.append(km)
                secs = (t - prev[0]) / 1e9
                o_kmh.append(km / (secs / 3600.0) if secs else nan)
            else:
                o_km.append(nan)
                o_kmh.append(nan)

            # labels known on the terminal: t - 28d <= ts <= t - 7d
            st = self.term.get(term)
            if st is not None:
                pend, act = st[0], st[1]
                while pend and pend[0][0] <= t - FD:
                    row = pend.popleft()
                    act.append(row)
                    st[2] += row[1] == 1
                    st[3] += row[1] >= 0
                while act and act[0][0] < t - FW:
                    _, lb = act.popleft()
                    st[2] -= lb == 1
                    st[3] -= lb >= 0
                o_fcount.append(float(st[2]))
                o_frate.append(st[2] / st[3] if st[3] else nan)
            else:
                o_fcount.append(0.0)
                o_frate.append(nan)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10, help="measured batches")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up batches (not timed)")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="engine runs (best one counts)")
    parser.add_argument(
        "--ages",
        help="comma-separated days of history: measure throughput at each age (section 4 only)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="with --ages: also measure FeatureEngine(threads=N) (wall time, side by side)",
    )
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.warmup = min(args.batches, 4), min(args.warmup, 6)
        args.repeat = min(args.repeat, 2)

    specs = load_rules(ROOT / "rules").features
    if args.ages:
        by_age([float(a) for a in args.ages.split(",")], specs, args)
        return
    # Both sides compute the same features: the ones the per-row version is written for
    # (rules/default.yaml has gained lagged profiles and terminal recency since).
    declared = len(specs)
    specs = tuple(s for s in specs if s.name in PerRowFeatures.NAMES)
    assert {s.name for s in specs} == set(PerRowFeatures.NAMES), "a feature of the 14 changed"
    sim = Simulator(seed=1)
    warm = [sim.next_batch(args.batch).frame for _ in range(args.warmup)]
    batches = [sim.next_batch(args.batch).frame for _ in range(args.batches)]
    rows = sum(len(b) for b in batches)
    names = [s.name for s in specs]
    print(
        f"data: {rows:,} measured rows in {len(batches)} batches of {args.batch:,} "
        f"(+{sum(map(len, warm)):,} rows of untimed warm-up); {len(specs)} of the {declared} "
        f"default features (those the per-row version computes)"
    )
    first = (warm or batches)[0]["ts"].min()
    print(
        f"      simulated time: {first} .. {batches[-1]['ts'].max()} "
        f"(measured from {batches[0]['ts'].min()})"
    )

    # 1. engine (best of --repeat runs, each on fresh state after the same warm-up)
    def run_engine(defer: bool = False) -> tuple[float, list[pd.DataFrame], list[float]]:
        """CPU seconds for all batches (maintenance included), outputs, per-batch seconds
        (``compute`` only: what a caller waits for before it can hand the batch on)."""
        engine = FeatureEngine(specs)
        for b in warm:
            engine.compute(b)
        out, per = [], []
        start = time.process_time()
        for b in batches:
            t0 = time.process_time()
            out.append(engine.compute(b, defer_maintenance=defer))
            per.append(time.process_time() - t0)
            if defer:
                engine.maintain()
        return time.process_time() - start, out, per

    runs = [run_engine() for _ in range(max(1, args.repeat))]
    t_engine = min(t for t, _, _ in runs)
    eng = pd.concat(runs[0][1], ignore_index=True)
    deferred = [run_engine(defer=True) for _ in range(max(1, args.repeat))]
    t_deferred = min(t for t, _, _ in deferred)
    same = pd.concat(deferred[0][1], ignore_index=True).equals(eng)

    # 2. per-row Python
    proc = PerRowFeatures()
    for b in warm:
        proc.process(b)
    start = time.process_time()
    row_out = [proc.process(b) for b in batches]
    t_rows = time.process_time() - start
    per_row = {k: np.concatenate([np.asarray(o[k]) for o in row_out]) for k in names}

    r_e, r_p = rows / t_engine, rows / t_rows
    print(f"\n1./2. streaming the measured batches (CPU time; engine: best of {len(runs)}):")
    print(f"   FeatureEngine   : {r_e:>12,.0f} rows/s  ({t_engine:.3f} s)")
    print(
        f"   deferred maint. : {rows / t_deferred:>12,.0f} rows/s  ({t_deferred:.3f} s, "
        f"maintain() between batches; same values: {same})"
    )
    for label, group in (("inline", runs), ("deferred", deferred)):
        per = np.array([p for _, _, ps in group for p in ps]) * 1e3
        print(
            f"   per-batch compute ({label:>8}): median {np.median(per):6.1f} ms, "
            f"p99 {np.percentile(per, 99):6.1f} ms, max {per.max():6.1f} ms"
        )
    print(f"   per-row Python  : {r_p:>12,.0f} rows/s  ({t_rows:.3f} s)")
    print(f"   engine/per-row  = {r_e / r_p:.1f}x")
    figure(
        f"FeatureEngine, {len(specs)} features streamed (CPU time)",
        r_e,
        "rows/s",
        anchor="per-row Python",
        ratio=r_e / r_p,
    )
    inline = np.array([p for _, _, ps in runs for p in ps]) * 1e3
    figure("per-batch compute p99 (inline maintenance)", np.percentile(inline, 99), "ms")

    # 3. same values?
    print(f"\n3. per-feature check on the {rows:,} measured rows (rtol 1e-9, NaN == NaN):")
    bad = 0
    for s in specs:
        a = eng[s.name].to_numpy()
        b = per_row[s.name]
        if a.dtype == bool or b.dtype == bool:
            ok = a.astype(bool) == b.astype(bool)
        else:
            a, b = a.astype(np.float64), b.astype(np.float64)
            ok = np.isclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)
        wrong = int((~ok).sum())
        bad += wrong > 0
        note = "same" if not wrong else f"DIFFERENT on {wrong:,} rows"
        extra = ""
        if a.dtype != bool:
            extra = f"  (NaN rows: {int(np.isnan(a.astype(float)).sum()):,})"
        if len(np.unique(a)) <= 1:
            extra += "  [constant on these rows: check is vacuous, use more --warmup]"
        print(f"   {s.name:<24} {s.agg:<12} {note}{extra}")
        if wrong:
            i = int(np.flatnonzero(~ok)[0])
            print(f"      first at row {i}: engine={a[i]!r} per-row={b[i]!r}")
    print(f"   {len(specs) - bad}/{len(specs)} features identical")
    figure("features identical to per-row Python", len(specs) - bad, f"of {len(specs)}")


def by_age(ages: list[float], specs, args) -> None:
    """4. Engine throughput at each age of history held: the same simulated stream is
    streamed (untimed, in batches of 50,000) until ``age`` days of it are in the state, then
    ``--batches`` batches of ``--batch`` rows are timed (CPU time, best of ``--repeat``)."""
    print(
        f"4. FeatureEngine throughput by age of the history held ({len(specs)} features; "
        f"{args.batches} timed batches of {args.batch:,}; CPU time, best of {args.repeat})"
    )
    rates = []
    for age in ages:
        best, held, rows = math.inf, 0, 0
        walls = {1: math.inf, args.threads: math.inf}
        for _ in range(max(1, args.repeat)):
            sim = Simulator(seed=1)
            engine = FeatureEngine(specs)
            start = None
            while True:
                b = sim.next_batch(50_000).frame
                engine.compute(b)
                start = b["ts"].min() if start is None else start
                if (b["ts"].max() - start).total_seconds() >= age * 86400:
                    break
            held = engine.state_rows
            batches = [sim.next_batch(args.batch).frame for _ in range(args.batches)]
            rows = sum(len(b) for b in batches)
            t0, w0 = time.process_time(), time.perf_counter()
            for b in batches:
                engine.compute(b)
            best = min(best, time.process_time() - t0)
            walls[1] = min(walls[1], time.perf_counter() - w0)
            if args.threads > 1:  # the same batches again, from a copy of the same state
                sim2, twin = Simulator(seed=1), FeatureEngine(specs, threads=args.threads)
                start2 = None
                while True:
                    b = sim2.next_batch(50_000).frame
                    twin.compute(b)
                    start2 = b["ts"].min() if start2 is None else start2
                    if (b["ts"].max() - start2).total_seconds() >= age * 86400:
                        break
                w0 = time.perf_counter()
                for b in batches:
                    twin.compute(b)
                walls[args.threads] = min(walls[args.threads], time.perf_counter() - w0)
        rates.append(rows / best)
        print(
            f"   {age:6.1f} days held ({held:>10,} state rows): {rows / best:>12,.0f} rows/s  "
            f"({best:.3f} s for {rows:,} rows)"
        )
        if args.threads > 1:
            one, many = rows / walls[1], rows / walls[args.threads]
            print(
                f"          wall time: 1 thread {one:>12,.0f} rows/s, {args.threads} threads "
                f"{many:>12,.0f} rows/s ({many / one:.2f}x; load {os.getloadavg()[0]:.2f})"
            )
            figure(
                f"FeatureEngine, {len(specs)} features, batches of {args.batch:,}, {age:g} days "
                f"held, {args.threads} threads (wall time)",
                many,
                "rows/s",
                anchor="1 thread",
                ratio=many / one,
            )
    for age, rate in zip(ages[1:], rates[1:], strict=True):
        print(f"   {age:g} days / {ages[0]:g} days = {rate / rates[0]:.2f}x")
    for age, rate in zip(ages, rates, strict=True):
        # the figure: all declared features (every rules/ file), batches of --batch rows,
        # CPU time of FeatureEngine.compute (maintenance inline), after ``age`` days held
        figure(
            f"FeatureEngine, {len(specs)} features, batches of {args.batch:,}, {age:g} days held "
            "(CPU time)",
            rate,
            "rows/s",
            anchor=f"{ages[0]:g} days held",
            ratio=rate / rates[0],
        )


if __name__ == "__main__":
    main()
