"""The hand-written migration history (versions 1–6), frozen: never edit it.

Before Alembic, :mod:`workbench.storage.migrations` applied these in order and recorded each in
``schema_migrations``. The Alembic revisions replay the same SQL — ``0001`` is versions 1–4
(the wave-1 schema), ``0002`` is 5 (exact amounts), ``0003`` is 6 (one identity per
transaction, dead-letter fingerprints) — so a database migrated by either runner has the same
schema, and one migrated by the old runner is stamped at the matching revision. Tests also use
versions 1–4 to build a wave-1 database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


# Ids are COLLATE "C": byte order is all an id needs, and it makes the btree inserts of a
# batch about twice as fast as a linguistic collation (measured with C.UTF-8).
# The primary key is declared (ts, tx_id) rather than (tx_id, ts): the same uniqueness (the
# conflict target is still "(tx_id, ts)"), but inserts land at the right edge of the index
# instead of at random places, and the index serves "newest first" scans. (Migration 6
# replaces it: the identity of a transaction is its tx_id alone.)
_TRANSACTIONS = """
CREATE TABLE transactions (
    tx_id             text COLLATE "C" NOT NULL,
    ts                timestamptz      NOT NULL,
    card_id           text COLLATE "C" NOT NULL,
    customer_id       text,
    terminal_id       text,
    merchant_category text,
    amount            double precision NOT NULL,
    currency          text,
    country           text,
    lat               double precision,
    lon               double precision,
    channel           text,
    device_id         text,
    is_fraud          boolean,
    fraud_scenario    text,
    risk_score        double precision,
    band              text,
    rule_hits         jsonb            NOT NULL DEFAULT '{}',
    rule_set_version  text,
    stored_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (ts, tx_id)
) PARTITION BY RANGE (ts);
CREATE INDEX transactions_ts_brin ON transactions USING brin (ts);
CREATE INDEX transactions_card_ts ON transactions (card_id, ts);
"""

_RULE_SETS = """
CREATE TABLE rule_sets (
    id          bigserial   PRIMARY KEY,
    version     text        NOT NULL,
    files       jsonb       NOT NULL DEFAULT '{}',
    author      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    status      text        NOT NULL CHECK (status IN ('accepted', 'rejected')),
    error       text
);
CREATE INDEX rule_sets_version ON rule_sets (version);
CREATE INDEX rule_sets_created ON rule_sets (created_at);
"""

_ALERTS = """
CREATE TABLE alerts (
    id               bigserial        PRIMARY KEY,
    tx_id            text COLLATE "C" NOT NULL,
    ts               timestamptz      NOT NULL,
    card_id          text COLLATE "C" NOT NULL,
    risk_score       double precision NOT NULL,
    band             text             NOT NULL,
    rules            jsonb            NOT NULL DEFAULT '{}',
    rule_set_version text,
    status           text             NOT NULL DEFAULT 'open'
                                      CHECK (status IN ('open', 'closed')),
    disposition      text             CHECK (disposition IN
                                      ('confirmed_fraud', 'false_positive', 'valuable')),
    assignee         text,
    notes            text,
    hit_count        integer          NOT NULL DEFAULT 1,
    last_ts          timestamptz      NOT NULL,
    created_at       timestamptz      NOT NULL DEFAULT now(),
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX alerts_open_card ON alerts (card_id, last_ts) WHERE status = 'open';
CREATE INDEX alerts_card ON alerts (card_id, ts);
CREATE INDEX alerts_ts ON alerts (ts);
CREATE TABLE alert_hits (
    alert_id    bigint           NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    tx_id       text COLLATE "C" NOT NULL,
    ts          timestamptz      NOT NULL,
    risk_score  double precision,
    band        text,
    rules       jsonb,
    attached_at timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, ts, tx_id)
);
"""

_OPERATIONS = """
CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text,
    worker      text,
    raw         text        NOT NULL,
    reason      text        NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);
CREATE TABLE pipeline_stats (
    id               bigserial        PRIMARY KEY,
    worker           text,
    source           text,
    committed_at     timestamptz      NOT NULL DEFAULT clock_timestamp(),
    batch_created_at timestamptz,
    stored           integer          NOT NULL,
    duplicates       integer          NOT NULL,
    dead             integer          NOT NULL,
    alerts_opened    integer          NOT NULL,
    alerts_attached  integer          NOT NULL,
    rule_set_version text,
    min_ts           timestamptz,
    max_ts           timestamptz,
    latency_s        double precision
);
CREATE INDEX pipeline_stats_committed ON pipeline_stats (committed_at);
CREATE VIEW pipeline_throughput AS
SELECT date_trunc('second', committed_at) AS second,
       count(*)                           AS batches,
       sum(stored)                        AS stored,
       sum(dead)                          AS dead,
       sum(alerts_opened)                 AS alerts_opened,
       avg(latency_s)                     AS mean_latency_s,
       max(latency_s)                     AS max_latency_s
FROM pipeline_stats
GROUP BY 1;
"""

# Exact money. ALTER ... TYPE on the partitioned parent converts every partition; the
# transactions_card_ts and primary-key indexes do not involve amount and are kept.
_EXACT_AMOUNTS = """
ALTER TABLE transactions ALTER COLUMN amount TYPE numeric(14,2) USING round(amount::numeric, 2);
"""

# One identity per transaction. Wave 1 keyed transactions on (ts, tx_id), so a tx_id may be
# stored with several timestamps: the oldest is the transaction, the later copies were
# duplicates and are deleted (alerts they joined keep their history). Dead letters get a
# fingerprint so a replay does not store them again; existing copies are deduplicated first
# (the oldest kept). transaction_ids is now the key: the (ts, tx_id) primary key of
# transactions would only repeat it, at the cost of a second unique index insert per row
# (measured with both: COPY throughput -8 %), so a plain btree on ts takes its place for
# range scans and newest-first pages (which it also made the BRIN index redundant for).
# sha256 over the text's UTF-8 bytes: convert_to() is not immutable, so a
# generated column cannot call it; decode(.., 'escape') of the text with its backslashes
# doubled yields the same bytes and is.
_IDENTITY = r"""
CREATE TABLE transaction_ids (
    tx_id text COLLATE "C" PRIMARY KEY,
    ts_us bigint           NOT NULL
);
INSERT INTO transaction_ids (tx_id, ts_us)
SELECT DISTINCT ON (tx_id) tx_id, (extract(epoch FROM ts) * 1000000)::bigint
FROM transactions ORDER BY tx_id, ts;
DELETE FROM transactions t USING transaction_ids i
WHERE t.tx_id = i.tx_id AND t.ts <> 'epoch'::timestamptz + i.ts_us * interval '1 microsecond';
ALTER TABLE dead_letters ADD COLUMN fingerprint bytea GENERATED ALWAYS AS (
    sha256(decode(replace(coalesce(source, '') || chr(31) || raw || chr(31) || reason,
                          '\', '\\'), 'escape'))
) STORED;
DELETE FROM dead_letters d USING dead_letters e
WHERE d.fingerprint = e.fingerprint AND d.id > e.id;
CREATE UNIQUE INDEX dead_letters_fingerprint ON dead_letters (fingerprint);
ALTER TABLE transactions DROP CONSTRAINT transactions_pkey;
DROP INDEX transactions_ts_brin;
CREATE INDEX transactions_ts ON transactions (ts);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "transactions", _TRANSACTIONS),
    Migration(2, "rule_sets", _RULE_SETS),
    Migration(3, "alerts", _ALERTS),
    Migration(4, "dead_letters_and_pipeline_stats", _OPERATIONS),
    Migration(5, "exact_amounts", _EXACT_AMOUNTS),
    Migration(6, "transaction_identity_and_dead_letter_fingerprint", _IDENTITY),
)


def sql(*versions: int) -> str:
    """The SQL of the given versions, in order (for the Alembic revisions that replay them)."""
    return "\n".join(m.sql for m in MIGRATIONS if m.version in versions)
