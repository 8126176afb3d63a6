"""The case queue's page and count queries at 100k and 1M active cases (seeded by SQL).

For a few filter/sort combinations: the first page and a deep keyset page (the cursor of the
row half-way down that order; finding it is not timed), ``--repeat`` times each, p50/p99 in
ms; the bounded counts (status, band, assignee); and the plan of the default page query at
the largest size, which must read an index (no sequential scan and sort of every case).

Creates its own database ``wb_bench_queue_<pid>`` on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``), migrates it and drops it at the end. No pass/fail; prints figures.

Usage: PYTHONPATH=. python benchmarks/bench_queue.py [--sizes 100000 1000000] [--repeat 30]
       PYTHONPATH=. python benchmarks/bench_queue.py --quick   (100k cases, 10 repeats)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import sqlalchemy as sa
from _db import admin_dsn, own_database
from _report import figure
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from tests.case_seed import seed_cases
from workbench.storage import cases, connect, upgrade

COMBOS = [
    ("active, by score", cases.Filters(), "score"),
    ("High + unassigned, by score", cases.Filters(bands=("High",), assignee="unassigned"), "score"),
    ("rule velocity, by SLA", cases.Filters(rule="velocity"), "sla"),
    ("mine (alice), by opened", cases.Filters(assignee="me", user="alice"), "opened"),
    ("score 80-90, amount >= 1000, by amount",
     cases.Filters(score_min=80, score_max=90, amount_min=1000), "amount"),
    ("investigating, by score", cases.Filters(statuses=("investigating",)), "score"),
]  # fmt: skip


def _ms(samples: list[float]) -> str:
    a = np.asarray(samples) * 1000
    return f"{np.percentile(a, 50):7.1f} {np.percentile(a, 99):7.1f}"


def _middle(conn, filters: cases.Filters, sort: str):
    """The cursor of the row half-way down (OFFSET here is setup, not the measured query)."""
    query, _ = cases.page_query(filters, sort, limit=1)
    counted = sa.select(sa.func.count()).select_from(query.limit(None).order_by(None).subquery())
    compiled = counted.compile(
        dialect=PGDialect_psycopg(), compile_kwargs={"render_postcompile": True}
    )
    n = conn.execute(str(compiled), compiled.params).fetchone()[0]
    query = query.limit(1).offset(n // 2)
    compiled = query.compile(
        dialect=PGDialect_psycopg(), compile_kwargs={"render_postcompile": True}
    )
    row = conn.execute(str(compiled), compiled.params).fetchone()
    if row is None:
        return None
    names = cases.COLUMNS
    return (row[names.index(cases.SORTS[sort][0])], row[0])


def _explain(conn, query: sa.Select) -> str:
    compiled = query.compile(
        dialect=PGDialect_psycopg(), compile_kwargs={"render_postcompile": True}
    )
    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params)
    return "\n".join(r[0] for r in rows)


def measure(conn, size: int, repeat: int) -> None:
    print(f"\n== {size:,} active cases            first page p50/p99 ms   deep page p50/p99 ms")
    worst_first = worst_deep = 0.0
    for label, filters, sort in COMBOS:
        first, deep = [], []
        middle = _middle(conn, filters, sort)
        for _ in range(repeat):
            t = time.perf_counter()
            cases.page(conn, filters, sort, limit=50)
            first.append(time.perf_counter() - t)
            if middle is not None:
                t = time.perf_counter()
                cases.page(conn, filters, sort, after=middle, limit=50)
                deep.append(time.perf_counter() - t)
        print(f"  {label:<40} {_ms(first)}         {_ms(deep) if deep else '   -'}")
        worst_first = max(worst_first, float(np.percentile(first, 99)) * 1000)
        if deep:
            worst_deep = max(worst_deep, float(np.percentile(deep, 99)) * 1000)
    high_rule = cases.Filters(bands=("High",), rule="velocity")
    for label, filters in (
        ("counts, no filter", cases.Filters()),
        ("counts, High+rule", high_rule),
    ):
        samples = []
        for _ in range(max(3, repeat // 5)):
            t = time.perf_counter()
            found = cases.counts(conn, filters)
            samples.append(time.perf_counter() - t)
        print(f"  {label:<40} {_ms(samples)}   {found['status']}")
    what = f"{size // 1000:,}k cases, p99 of the slowest of {len(COMBOS)} filters/sorts"
    figure(f"first page, {what}", worst_first, "ms")
    figure(f"deep keyset page, {what}", worst_deep, "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeat = [min(args.sizes)], min(args.repeat, 10)
    with own_database(args.dsn, "wb_bench_queue") as dsn, connect(dsn) as conn:
        upgrade(conn)
        have = 0
        for size in sorted(args.sizes):
            t = time.perf_counter()
            seed_cases(conn, size - have, prefix=f"s{size}-", seed=size % 97 / 100, alerts=False)
            have = size
            print(f"(seeded {size:,} cases in {time.perf_counter() - t:.1f}s)")
            conn.execute("VACUUM ANALYZE cases")
            measure(conn, size, args.repeat)
        for label, filters, sort in COMBOS[:3]:
            query, _ = cases.page_query(filters, sort, limit=50)
            print(f"\nEXPLAIN ANALYZE at {have:,}: {label}\n{_explain(conn, query)}")


if __name__ == "__main__":
    main()
