"""Seed many cases (with one alert each) by SQL, in seconds: for the queue's tests, browser
test and benchmark (benchmarks/bench_queue.py). Not through the pipeline: 1M cases through
the writer would take minutes and measure the writer, not the queue.

Values are pseudo-random from ``setseed``: the same ``seed`` gives the same rows.
"""

from __future__ import annotations

import psycopg

RULES = ("big_amount", "new_country", "velocity", "night_owl", "mcc_risk", "geo_jump")
ANALYSTS = ("alice", "bob", "carol")

_SEED = """
INSERT INTO cases (card_id, status, assignee, opened_at, updated_at, sla_due, alert_count,
                   hit_count, max_score, band, max_amount, rules, first_ts, last_ts)
SELECT %(prefix)s || lpad(g::text, 8, '0'),
       CASE WHEN r.s < 0.15 THEN 'investigating' ELSE 'open' END,
       CASE WHEN r.a < 0.6 THEN NULL ELSE (%(analysts)s::text[])[1 + (r.a * 1000)::int %% 3] END,
       t.opened, t.opened, t.opened + interval '24 hours', 1, 1 + (r.h * 5)::int,
       round((40 + r.score * 60)::numeric, 2)::double precision,
       CASE WHEN r.score >= 0.5 THEN 'High' ELSE 'Medium' END,
       round((r.amount * 5000)::numeric, 2),
       jsonb_build_object((%(rules)s::text[])[1 + (r.k * 1000)::int %% 6], 40),
       t.opened - interval '1 hour', t.opened - interval '10 minutes'
FROM generate_series(1, %(n)s) g,
     LATERAL (SELECT random() AS s, random() AS a, random() AS h, random() AS score,
                     random() AS amount, random() AS k, random() AS t, g AS dep) r,
     LATERAL (SELECT %(start)s::timestamptz + r.t * interval '30 days' AS opened) t
"""

_ALERTS = """
INSERT INTO alerts (tx_id, ts, card_id, risk_score, band, rules, hit_count, last_ts, case_id,
                    created_at)
SELECT 'tx-' || c.card_id, c.first_ts, c.card_id, c.max_score, c.band, c.rules, c.hit_count,
       c.last_ts, c.id, c.opened_at
FROM cases c WHERE c.card_id LIKE %(prefix)s || '%%' AND NOT EXISTS (
    SELECT 1 FROM alerts a WHERE a.case_id = c.id)
"""


def seed_cases(
    conn: psycopg.Connection,
    n: int,
    *,
    seed: float = 0.42,
    prefix: str = "card",
    start: str = "2026-11-01T00:00:00Z",
    alerts: bool = True,
) -> None:
    """``n`` active cases on cards ``<prefix>00000001``...; one alert each when ``alerts``."""
    params = {
        "n": n,
        "prefix": prefix,
        "start": start,
        "rules": list(RULES),
        "analysts": list(ANALYSTS),
    }
    with conn.transaction():
        conn.execute("SELECT setseed(%s)", (seed,))
        conn.execute(_SEED, params)
        if alerts:
            conn.execute(_ALERTS, params)
    conn.execute("ANALYZE cases")
    if alerts:
        conn.execute("ANALYZE alerts")
