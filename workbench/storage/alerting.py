"""Alerts raised by a batch, set-based: at most one open alert per card per dedup window.

The writer leaves the batch's newly stored transactions whose band reaches the alert band in
the temp table ``wb_stage_alert`` (``alertable``). Per card, those rows are cut into
*sessions*: a row more than ``dedup`` (event time) after the card's previous qualifying row
starts a new session. A card's first session attaches to the card's open alert when it lies
within ``dedup`` of that alert's span; every other session opens a new alert. Attaching adds
to ``hit_count``, keeps the maximum score (and its band), merges rules keeping each rule's
maximum points, and extends ``last_ts``. Every qualifying row is recorded in ``alert_hits``.

Using event time rather than the wall clock makes alerts reproducible on replay. A closed
alert never collects hits: the next qualifying row opens a new one.

Cases (:mod:`workbench.storage.cases`): one statement per batch (:data:`_CASES`, after the
match and before the alerts are written) adds each card's new alerts and hits to the card's
active case, or opens one (due ``case_sla`` of wall-clock time later: the SLA is the
analysts' clock, not the events'), and stages its id, so new alerts are inserted with their
case; one more (:data:`_CASE_EVENTS`) records one ``hit`` event per case. The card locks
above serialise it, so two writers never open two cases for one card (the partial unique
index ``cases_active_card`` would refuse the second).
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg import sql

# Namespace of the per-card-bucket advisory locks (two-key form: namespace, bucket).
CARD_LOCK_NAMESPACE = 0x7762
CARD_LOCK_BUCKETS = 64  # a power of two

# The alert stages keep their rows at commit: the batch writer empties its staging tables
# itself (see _STAGE_DDL in workbench.storage.writer for why not ON COMMIT DELETE ROWS).
STAGE_DDL = """
CREATE TEMP TABLE wb_stage_alert (
    tx_id text, ts timestamptz, card_id text, amount numeric(14, 2), currency text,
    risk_score double precision, band text, rule_hits jsonb, rule_set_version text,
    alertable boolean, sess integer
) ON COMMIT PRESERVE ROWS;
CREATE TEMP TABLE wb_stage_group (
    card_id text, sess integer, first_tx text, first_ts timestamptz, last_ts timestamptz,
    n integer, max_score double precision, band text, rules jsonb, rule_set_version text,
    alert_id bigint, opened boolean NOT NULL DEFAULT false,
    case_id bigint, case_opened boolean NOT NULL DEFAULT false
) ON COMMIT PRESERVE ROWS;
"""

_SESSIONS = """
UPDATE wb_stage_alert a SET sess = s.sess
FROM (
    SELECT tx_id, ts, sum(brk) OVER (PARTITION BY card_id ORDER BY ts, tx_id
                                     ROWS UNBOUNDED PRECEDING) AS sess
    FROM (SELECT tx_id, ts, card_id,
                 CASE WHEN ts - lag(ts) OVER (PARTITION BY card_id ORDER BY ts, tx_id)
                           <= {dedup} THEN 0 ELSE 1 END AS brk
          FROM wb_stage_alert WHERE alertable) q
) s
WHERE a.tx_id = s.tx_id AND a.ts = s.ts AND a.alertable
"""

# Rules of a session: each rule's maximum points over the session's rows.
_GROUPS = """
INSERT INTO wb_stage_group (card_id, sess, first_tx, first_ts, last_ts, n, max_score, band,
                            rules, rule_set_version)
WITH r AS (
    SELECT card_id, sess, jsonb_object_agg(key, points) AS rules
    FROM (SELECT x.card_id, x.sess, e.key, max(e.value::double precision) AS points
          FROM wb_stage_alert x, jsonb_each(x.rule_hits) e
          WHERE x.alertable GROUP BY 1, 2, 3) k
    GROUP BY card_id, sess
), g AS (
    SELECT card_id, sess,
           (array_agg(tx_id ORDER BY ts, tx_id))[1] AS first_tx,
           min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n,
           max(risk_score) AS max_score,
           (array_agg(band ORDER BY risk_score DESC NULLS LAST))[1] AS band,
           (array_agg(rule_set_version ORDER BY ts DESC))[1] AS rule_set_version
    FROM wb_stage_alert WHERE alertable GROUP BY card_id, sess
)
SELECT g.card_id, g.sess, g.first_tx, g.first_ts, g.last_ts, g.n, g.max_score, g.band,
       coalesce(r.rules, '{{}}'::jsonb), g.rule_set_version
FROM g LEFT JOIN r ON r.card_id = g.card_id AND r.sess = g.sess
"""

# Serialise alert decisions per card across concurrent writers. Cards are hashed into
# CARD_LOCK_BUCKETS advisory locks (taken in sorted order: no deadlocks): one lock per card
# would exhaust the server's lock table on a batch of 50k distinct cards.
_LOCK_CARDS = """
SELECT pg_advisory_xact_lock({ns}, b)
FROM (SELECT DISTINCT (hashtext(card_id) & ({buckets} - 1)) AS b
      FROM wb_stage_group ORDER BY 1) c
"""

_MATCH_OPEN = """
UPDATE wb_stage_group g SET alert_id = (
    SELECT a.id FROM alerts a
    WHERE a.card_id = g.card_id AND a.status = 'open'
      AND g.first_ts <= a.last_ts + {dedup} AND g.last_ts >= a.ts - {dedup}
    ORDER BY a.last_ts DESC LIMIT 1)
WHERE g.sess = 1
"""

_ATTACH = """
UPDATE alerts a SET
    hit_count  = a.hit_count + g.n,
    band       = CASE WHEN g.max_score > a.risk_score THEN g.band ELSE a.band END,
    risk_score = greatest(a.risk_score, g.max_score),
    rules      = (SELECT jsonb_object_agg(key, points) FROM (
                      SELECT key, max(value::double precision) AS points
                      FROM (SELECT * FROM jsonb_each(a.rules)
                            UNION ALL SELECT * FROM jsonb_each(g.rules)) kv
                      GROUP BY key) m),
    last_ts    = greatest(a.last_ts, g.last_ts),
    updated_at = now(),
    case_id    = coalesce(a.case_id, g.case_id)  -- an alert opened before revision 0008
FROM wb_stage_group g
WHERE g.alert_id = a.id
  -- An index condition on alerts: the temp table has no statistics, and the planner would
  -- otherwise hash-join it with every alert ever opened (a cost growing with the table).
  AND a.id = ANY (ARRAY(SELECT alert_id FROM wb_stage_group WHERE alert_id IS NOT NULL))
"""

_OPEN = """
WITH opened AS (
    INSERT INTO alerts (tx_id, ts, card_id, risk_score, band, rules, rule_set_version,
                        hit_count, last_ts, case_id)
    SELECT first_tx, first_ts, card_id, max_score, band, rules, rule_set_version, n, last_ts,
           case_id
    FROM wb_stage_group WHERE alert_id IS NULL
    RETURNING id, card_id, tx_id, ts
)
UPDATE wb_stage_group g SET alert_id = o.id, opened = true
FROM opened o
WHERE g.alert_id IS NULL AND g.card_id = o.card_id AND g.first_tx = o.tx_id
  AND g.first_ts = o.ts
"""

_HITS = """
INSERT INTO alert_hits (alert_id, tx_id, ts, risk_score, band, rules)
SELECT g.alert_id, a.tx_id, a.ts, a.risk_score, a.band, a.rule_hits
FROM wb_stage_alert a JOIN wb_stage_group g ON g.card_id = a.card_id AND g.sess = a.sess
WHERE a.alertable
ON CONFLICT DO NOTHING
"""

# Cases, before the alerts are opened (a group without an alert_id will open one): each
# card's active case is updated, or opened, and its id staged, so that _OPEN inserts the
# alerts with their case and no alert row is written twice.
_CASES = """
WITH b AS (
    SELECT g.*, x.amount, x.currency, coalesce(r.rules, '{{}}'::jsonb) AS rules
    FROM (SELECT card_id, count(*) FILTER (WHERE alert_id IS NULL) AS alerts, sum(n) AS hits,
                 max(max_score) AS max_score,
                 (array_agg(band ORDER BY max_score DESC))[1] AS band,
                 min(first_ts) AS first_ts, max(last_ts) AS last_ts
          FROM wb_stage_group GROUP BY card_id) g
    LEFT JOIN (SELECT card_id, max(amount) AS amount,
                      (array_agg(currency ORDER BY amount DESC))[1] AS currency
               FROM wb_stage_alert WHERE alertable GROUP BY card_id) x USING (card_id)
    LEFT JOIN (SELECT card_id, jsonb_object_agg(key, points) AS rules
               FROM (SELECT s.card_id, e.key, max(e.value::double precision) AS points
                     FROM wb_stage_group s, jsonb_each(s.rules) e GROUP BY 1, 2) k
               GROUP BY card_id) r USING (card_id)
), joined AS (
    UPDATE cases c SET
        alert_count = c.alert_count + b.alerts,
        hit_count   = c.hit_count + b.hits,
        band        = CASE WHEN b.max_score > c.max_score THEN b.band ELSE c.band END,
        max_score   = greatest(c.max_score, b.max_score),
        currency    = CASE WHEN b.amount > c.max_amount THEN b.currency
                           ELSE coalesce(c.currency, b.currency) END,
        max_amount  = greatest(c.max_amount, coalesce(b.amount, 0)),
        rules       = coalesce((SELECT jsonb_object_agg(key, points) FROM (
                          SELECT key, max(value::double precision) AS points
                          FROM (SELECT * FROM jsonb_each(c.rules)
                                UNION ALL SELECT * FROM jsonb_each(b.rules)) kv
                          GROUP BY key) m), '{{}}'::jsonb),
        last_ts     = greatest(c.last_ts, b.last_ts),
        updated_at  = now()
    FROM b
    WHERE c.card_id = b.card_id AND c.status <> 'closed'
      -- An index condition (see _ATTACH: the temp table has no statistics).
      AND c.card_id = ANY (ARRAY(SELECT card_id FROM wb_stage_group))
    RETURNING c.id, c.card_id
), opened AS (
    INSERT INTO cases (card_id, sla_due, alert_count, hit_count, max_score, band, max_amount,
                       currency, rules, first_ts, last_ts)
    SELECT card_id, now() + {sla}, alerts, hits, max_score, band, coalesce(amount, 0),
           currency, rules, first_ts, last_ts
    FROM b WHERE card_id NOT IN (SELECT card_id FROM joined)
    RETURNING id, card_id
)
UPDATE wb_stage_group s SET case_id = e.id, case_opened = e.new
FROM (SELECT id, card_id, false AS new FROM joined
      UNION ALL SELECT id, card_id, true FROM opened) e
WHERE s.card_id = e.card_id
"""

# One timeline event per case touched (after _OPEN: the alerts' ids are known).
_CASE_EVENTS = """
INSERT INTO case_events (case_id, kind, actor, detail)
SELECT case_id, 'hit', 'pipeline',
       jsonb_build_object('alerts', array_agg(alert_id ORDER BY alert_id),
                          'new_alerts', count(*) FILTER (WHERE opened), 'hits', sum(n),
                          'max_score', max(max_score), 'opened', bool_or(case_opened))
FROM wb_stage_group GROUP BY case_id
"""

_COUNTS = "SELECT count(*) FILTER (WHERE opened), coalesce(sum(n), 0) FROM wb_stage_group"


def card_bucket_lock(cur: psycopg.Cursor, card_id: str) -> None:
    """Take the batch writer's advisory lock of ``card_id``'s bucket (until the transaction
    ends): an analyst closing a case then never interleaves with a batch joining it."""
    cur.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s) & %s)",
        (CARD_LOCK_NAMESPACE, card_id, CARD_LOCK_BUCKETS - 1),
    )


def raise_alerts(
    cur: psycopg.Cursor,
    dedup: timedelta,
    *,
    then: sql.Composable | None = None,
    case_sla: timedelta,
) -> tuple[int, int]:
    """Open or attach alerts for the alertable rows staged in ``wb_stage_alert``.

    Runs inside the batch transaction, all statements in one round trip: prepared
    statements (planned once per connection: planning cost more than running them on a
    batch's few alertable rows) sent in pipeline mode, the parameters as server-side
    constants (literals). A case opened here is due ``case_sla`` (wall clock) after it
    opens (setting ``case_sla``). ``then`` (a statement without parameters) is sent in the same
    round trip after them; on return the cursor holds its result. Returns ``(alerts_opened,
    alerts_attached)`` where ``alerts_attached`` counts qualifying transactions that joined
    an alert (existing or opened in this batch) instead of opening one.
    """
    values = {
        "dedup": sql.Literal(dedup),
        "ns": sql.Literal(CARD_LOCK_NAMESPACE),
        "buckets": sql.Literal(CARD_LOCK_BUCKETS),
        "sla": sql.Literal(case_sla),
    }
    conn = cur.connection
    with conn.cursor() as counts:
        with conn.pipeline():
            for text in (
                _SESSIONS,
                _GROUPS,
                _LOCK_CARDS,
                _MATCH_OPEN,
                _CASES,
                _ATTACH,
                _OPEN,
                _HITS,
                _CASE_EVENTS,
            ):
                cur.execute(sql.SQL(text).format(**values), prepare=True)
            counts.execute(_COUNTS, prepare=True)
            if then is not None:
                cur.execute(then, prepare=True)
        opened, qualifying = counts.fetchone()  # type: ignore[misc]
    return int(opened), int(qualifying) - int(opened)
