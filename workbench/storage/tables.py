"""Every table of ours, declared once: the SQLAlchemy Core :data:`metadata`.

This is the single source of the schema's shape: the writer's and readers' column lists are
taken from it, the read queries are built on its :class:`~sqlalchemy.Table` objects, and the
Alembic revisions (``workbench/storage/alembic/versions``) must produce exactly it — a test
runs ``alembic check`` (autogenerate's comparison) against a migrated database.

Tables
------
``transactions``    one row per stored transaction; range-partitioned by day on ``ts``
                    (``transactions_pYYYYMMDD``, see :mod:`workbench.storage.partitions`).
                    No primary key: a partitioned table's unique keys must include ``ts``, and
                    the identity of a transaction is its ``tx_id`` alone (next table).
``transaction_ids`` every stored tx_id once, with its ts as epoch microseconds (``ts_us``).
``rule_sets``       every rule-set load: version (content hash), files, author, status, error.
``shadow_rule_sets`` the challenger rule set in effect (newest row; no version: none) and
                   its rollout (percent of cards it decides for).
``shadow_scores``   the challenger's score, band and hits per transaction (never alerting).
``alerts``          one open alert per card and dedup window; analyst status/disposition.
``cases``           one per card while not closed: the analysts' unit of work (queue, claim,
                    SLA, outcome); its alert/hit counts, max score and rules kept current by
                    the batch write. ``case_events``: each case's timeline.
``alert_hits``      every transaction attached to an alert (the opening one included).
``dead_letters``    raw records that could not become transactions, with the reason; each
                    stored once (unique generated ``fingerprint`` of source, raw and reason).
``audit_log``       append-only: who (login, role, provider, address) did or was refused what
                    (action, object, before/after) and when; a trigger refuses UPDATE, DELETE
                    and TRUNCATE (revision 0004), so not even the table's owner rewrites it.
``labels``          analysts' and chargebacks' verdicts on transactions, append-only: the current
                    label of a (tx_id, source) is its newest row (highest id); older rows are
                    its history (see :mod:`workbench.storage.labels`).
``alert_evidence``  per alerted transaction, the value of every name each fired rule read
                    (``{rule_id: {name: value}}``), taken at scoring time (revision 0007).
``list_entries``    maintained allow/block list values (list name, kind, value, reason, who,
                    when, optional expiry), edited in the dashboard (revision 0007).
``rule_snoozes``    per-entity rule snoozes (rule, entity kind and value, until, reason, who);
                    lifted early by setting ``lifted_at`` (revision 0007).
``pipeline_stats``  one row per committed batch; the view ``pipeline_throughput`` (SQL in the
                    first revision: a view is not a table of this metadata) sums it per second.

Ids are ``text COLLATE "C"``: byte order is all an id needs, and it makes the btree inserts of
a batch about twice as fast as a linguistic collation (measured with C.UTF-8). Money is exact:
``amount`` is ``numeric(14,2)``.

Importing this module connects to nothing (SQLAlchemy is imported, not the driver).
"""

from __future__ import annotations

import re

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from workbench.schema import COLUMNS

metadata = MetaData()

_ID = Text(collation="C")
_TS = DateTime(timezone=True)

# The batch schema's column kinds as stored (ids and amount are special-cased below).
_KINDS = {"str": Text, "timestamp": lambda: _TS, "float": Double, "bool": Boolean}
_IDS = ("tx_id", "card_id")
_REQUIRED = ("tx_id", "ts", "card_id", "amount")


def _schema_column(name: str, kind: str) -> Column:
    if name in _IDS:
        type_ = _ID
    elif name == "amount":
        type_ = Numeric(14, 2)
    else:
        type_ = _KINDS[kind]()
    return Column(name, type_, nullable=name not in _REQUIRED)


transactions = Table(
    "transactions",
    metadata,
    *(_schema_column(c.name, c.kind) for c in COLUMNS),
    Column("risk_score", Double),
    Column("band", Text),
    Column("rule_hits", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("rule_set_version", Text),
    Column("stored_at", _TS, nullable=False, server_default=func.now()),
    Index("transactions_card_ts", "card_id", "ts"),
    Index("transactions_ts", "ts"),
    postgresql_partition_by="RANGE (ts)",
)

transaction_ids = Table(
    "transaction_ids",
    metadata,
    Column("tx_id", _ID, primary_key=True),
    Column("ts_us", BigInteger, nullable=False),
)

rule_sets = Table(
    "rule_sets",
    metadata,
    Column("id", BigInteger, primary_key=True),  # bigserial
    Column("version", Text, nullable=False),
    Column("files", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("author", Text),
    Column("created_at", _TS, nullable=False, server_default=func.now()),
    Column("status", Text, nullable=False),
    Column("error", Text),
    CheckConstraint("status IN ('accepted', 'rejected')", name="rule_sets_status_check"),
    Index("rule_sets_version", "version"),
    Index("rule_sets_created", "created_at"),
)

# The challenger rule set (append-only; the newest row is in effect, no version = none) and
# what it made of each transaction: stored beside, never alerting (revision 0011); with a
# rollout, the percent of cards it decides for instead (revision 0013).
shadow_rule_sets = Table(
    "shadow_rule_sets",
    metadata,
    Column("id", BigInteger, primary_key=True),  # bigserial
    Column("version", Text),
    Column("files", JSONB),
    Column("author", Text),
    Column("created_at", _TS, nullable=False, server_default=func.now()),
    Column("rollout", SmallInteger, nullable=False, server_default=text("0")),
    CheckConstraint("rollout BETWEEN 0 AND 100", name="shadow_rule_sets_rollout"),
)

shadow_scores = Table(
    "shadow_scores",
    metadata,
    Column("tx_id", _ID, nullable=False),
    Column("ts", _TS, nullable=False),
    Column("risk_score", Double, nullable=False),
    Column("band", Text, nullable=False),
    Column("rule_hits", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("rule_set_version", Text, nullable=False),
    PrimaryKeyConstraint("tx_id", "rule_set_version", name="shadow_scores_pkey"),
    Index("shadow_scores_ts", "ts"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, primary_key=True),  # bigserial
    Column("tx_id", _ID, nullable=False),
    Column("ts", _TS, nullable=False),
    Column("card_id", _ID, nullable=False),
    Column("risk_score", Double, nullable=False),
    Column("band", Text, nullable=False),
    Column("rules", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("rule_set_version", Text),
    Column("status", Text, nullable=False, server_default=text("'open'::text")),
    Column("disposition", Text),
    Column("assignee", Text),
    Column("notes", Text),
    Column("hit_count", Integer, nullable=False, server_default=text("1")),
    Column("last_ts", _TS, nullable=False),
    Column("created_at", _TS, nullable=False, server_default=func.now()),
    Column("updated_at", _TS, nullable=False, server_default=func.now()),
    Column("closed_at", _TS),
    Column("case_id", BigInteger),
    CheckConstraint("status IN ('open', 'closed')", name="alerts_status_check"),
    CheckConstraint(
        "disposition IN ('confirmed_fraud', 'false_positive', 'valuable')",
        name="alerts_disposition_check",
    ),
    CheckConstraint("(status = 'closed') = (closed_at IS NOT NULL)", name="alerts_check"),
    Index("alerts_open_card", "card_id", "last_ts", postgresql_where=text("status = 'open'")),
    Index("alerts_card", "card_id", "ts"),
    Index("alerts_ts", "ts"),
    Index("alerts_case", "case_id"),
    ForeignKeyConstraint(["case_id"], ["cases.id"], name="alerts_case_id_fkey"),
)

CASE_STATUSES = ("open", "investigating", "closed")
_ACTIVE = text("status <> 'closed'")
_BY_SCORE = (text("max_score DESC"), text("id DESC"))

cases = Table(
    "cases",
    metadata,
    Column("id", BigInteger, primary_key=True),  # bigserial
    Column("card_id", _ID, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'open'::text")),
    Column("assignee", Text),
    Column("claimed_at", _TS),
    Column("opened_at", _TS, nullable=False, server_default=func.now()),
    Column("updated_at", _TS, nullable=False, server_default=func.now()),
    Column("closed_at", _TS),
    Column("sla_due", _TS, nullable=False),
    Column("outcome", Text),
    Column("alert_count", Integer, nullable=False, server_default=text("0")),
    Column("hit_count", Integer, nullable=False, server_default=text("0")),
    Column("max_score", Double, nullable=False),
    Column("band", Text, nullable=False),
    Column("max_amount", Numeric(14, 2), nullable=False, server_default=text("0")),
    Column("rules", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("first_ts", _TS, nullable=False),
    Column("last_ts", _TS, nullable=False),
    Column("currency", Text),  # of max_amount's transaction (revision 0009)
    CheckConstraint("status IN ('open', 'investigating', 'closed')", name="cases_status_check"),
    CheckConstraint(
        "outcome IN ('confirmed_fraud', 'false_positive', 'valuable')", name="cases_outcome_check"
    ),
    CheckConstraint("(status = 'closed') = (closed_at IS NOT NULL)", name="cases_closed_check"),
    # One case per card while it is not closed; the writer's card locks keep it so, this
    # index makes a violation an error rather than a second case.
    Index("cases_active_card", "card_id", unique=True, postgresql_where=_ACTIVE),
    # The queue's keyset orders, over active cases (the queue's default view).
    Index("cases_active_score", text("max_score DESC"), text("id DESC"), postgresql_where=_ACTIVE),
    Index("cases_active_opened", "opened_at", "id", postgresql_where=_ACTIVE),
    Index("cases_active_sla", "sla_due", "id", postgresql_where=_ACTIVE),
    Index(
        "cases_active_amount", text("max_amount DESC"), text("id DESC"), postgresql_where=_ACTIVE
    ),
    Index(
        "cases_active_assignee",
        "assignee",
        text("max_score DESC"),
        text("id DESC"),
        postgresql_where=_ACTIVE,
    ),
    # Band and status filters and their bounded counts: a rare value (no Low case) is found
    # absent at once instead of after reading every active case.
    Index("cases_active_band", "band", *_BY_SCORE, postgresql_where=_ACTIVE),
    Index("cases_active_status", "status", *_BY_SCORE, postgresql_where=_ACTIVE),
    Index("cases_rules", "rules", postgresql_using="gin", postgresql_ops={"rules": "jsonb_ops"}),
    Index("cases_closed", "closed_at", "id", postgresql_where=text("status = 'closed'")),
)

case_events = Table(
    "case_events",
    metadata,
    Column("id", BigInteger, primary_key=True),  # bigserial
    Column("case_id", BigInteger, nullable=False),
    Column("at", _TS, nullable=False, server_default=func.clock_timestamp()),
    Column("kind", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    ForeignKeyConstraint(
        ["case_id"], ["cases.id"], ondelete="CASCADE", name="case_events_case_id_fkey"
    ),
    Index("case_events_case_at", "case_id", "at"),
)

alert_hits = Table(
    "alert_hits",
    metadata,
    Column("alert_id", BigInteger, nullable=False),
    Column("tx_id", _ID, nullable=False),
    Column("ts", _TS, nullable=False),
    Column("risk_score", Double),
    Column("band", Text),
    Column("rules", JSONB),
    Column("attached_at", _TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("alert_id", "ts", "tx_id", name="alert_hits_pkey"),
    ForeignKeyConstraint(
        ["alert_id"], ["alerts.id"], ondelete="CASCADE", name="alert_hits_alert_id_fkey"
    ),
)

# The fingerprint is sha256 over the UTF-8 bytes of source, raw and reason: convert_to() is
# not immutable, so a generated column cannot call it; decode(.., 'escape') of the text with
# its backslashes doubled yields the same bytes and is. Written as PostgreSQL prints it back,
# so that Alembic's comparison sees the same expression.
FINGERPRINT = (
    "sha256(decode(replace(((((COALESCE(source, ''::text) || chr(31)) || raw) || chr(31))"
    " || reason), '\\'::text, '\\\\'::text), 'escape'::text))"
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True),  # bigserial
    Column("received_at", _TS, nullable=False, server_default=func.now()),
    Column("source", Text),
    Column("worker", Text),
    Column("raw", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("fingerprint", LargeBinary, Computed(FINGERPRINT, persisted=True)),
    Index("dead_letters_received", "received_at"),
    Index("dead_letters_fingerprint", "fingerprint", unique=True),
)

LABELS = ("fraud", "legitimate")

labels = Table(
    "labels",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("tx_id", _ID, nullable=False),
    Column("ts", _TS, nullable=False),  # the transaction's event time
    Column("card_id", _ID, nullable=False),
    Column("customer_id", Text),
    Column("terminal_id", Text),
    Column("merchant_category", Text),
    Column("label", Text, nullable=False),
    Column("known_at", _TS, nullable=False),  # event-time scale, >= ts
    Column("source", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("alert_id", BigInteger),
    Column("case_id", BigInteger),
    Column("created_at", _TS, nullable=False, server_default=func.clock_timestamp()),
    CheckConstraint("label IN ('fraud', 'legitimate')", name="labels_label_check"),
    CheckConstraint("source ~ '^[a-z][a-z0-9_]{0,31}$'", name="labels_source_check"),
    CheckConstraint("known_at >= ts", name="labels_known_after_ts"),
    Index("labels_tx_source", "tx_id", "source", "id"),
    Index("labels_ts", "ts"),
)

pipeline_stats = Table(
    "pipeline_stats",
    metadata,
    Column("id", BigInteger, primary_key=True),  # bigserial
    Column("worker", Text),
    Column("source", Text),
    Column("committed_at", _TS, nullable=False, server_default=func.clock_timestamp()),
    Column("batch_created_at", _TS),
    Column("stored", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("dead", Integer, nullable=False),
    Column("alerts_opened", Integer, nullable=False),
    Column("alerts_attached", Integer, nullable=False),
    Column("rule_set_version", Text),
    Column("min_ts", _TS),
    Column("max_ts", _TS),
    Column("latency_s", Double),
    # A partitioned source's (Kafka) partitions owned and messages behind, for the health view
    Column("partitions", ARRAY(Integer)),
    Column("lag", BigInteger),
    Column("offsets", JSONB),  # {partition: next offset} of the batch (a Kafka source's)
    # The id of the transaction that committed the batch (xid8 as bigint): the cursor of the
    # batches committed since a snapshot (workbench.storage.committed; revision 0012)
    Column("xact", BigInteger, server_default=text("((pg_current_xact_id())::text)::bigint")),
    Index("pipeline_stats_committed", "committed_at"),
    Index("pipeline_stats_xact", "xact"),
)

AUDIT_OUTCOMES = ("ok", "refused", "failed")

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("at", _TS, nullable=False, server_default=func.clock_timestamp()),
    Column("actor", Text, nullable=False),
    Column("role", Text),
    Column("provider", Text),
    Column("address", Text),
    Column("action", Text, nullable=False),
    Column("object", Text),
    Column("outcome", Text, nullable=False),
    Column("before", JSONB),
    Column("after", JSONB),
    Column("detail", Text),
    CheckConstraint("outcome IN ('ok', 'refused', 'failed')", name="audit_log_outcome_check"),
    Index("audit_log_at", "at"),
    Index("audit_log_actor_at", "actor", "at"),
    Index("audit_log_action_at", "action", "at"),
)

# What each fired rule read when a transaction was scored, for the transactions that raised
# or joined an alert: {rule_id: {name: value}} (workbench.scoring.evidence). Keyed like
# transaction_ids: a transaction's identity is its tx_id.
alert_evidence = Table(
    "alert_evidence",
    metadata,
    Column("tx_id", _ID, primary_key=True),
    Column("ts", _TS, nullable=False),
    Column("evidence", JSONB, nullable=False),
)

LIST_KINDS = ("card", "merchant", "terminal", "country")

# Maintained allow/block lists (workbench.rules.lists): one row per value of a list, edited
# in the dashboard; a removal deletes the row (its audit row keeps what it was).
list_entries = Table(
    "list_entries",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("list_name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("value", _ID, nullable=False),
    Column("reason", Text),
    Column("added_by", Text, nullable=False),
    Column("added_at", _TS, nullable=False, server_default=func.now()),
    Column("expires_at", _TS),
    CheckConstraint(
        "kind IN ('card', 'merchant', 'terminal', 'country')", name="list_entries_kind_check"
    ),
    CheckConstraint("char_length(value) BETWEEN 1 AND 128", name="list_entries_value_check"),
    Index("list_entries_list_value", "list_name", "value", unique=True),
)

# Per-entity rule snoozes: while a transaction's event time is before ``until``, the rule's
# points are not counted for that entity. Lifting one early sets ``lifted_at``.
rule_snoozes = Table(
    "rule_snoozes",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("rule_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("value", _ID, nullable=False),
    Column("until", _TS, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", _TS, nullable=False, server_default=func.now()),
    Column("lifted_at", _TS),
    Column("lifted_by", Text),
    CheckConstraint("kind IN ('card', 'merchant', 'terminal')", name="rule_snoozes_kind_check"),
    Index(
        "rule_snoozes_active",
        "rule_id",
        "kind",
        "value",
        postgresql_where=text("lifted_at IS NULL"),
    ),
)

VIEWS = ("pipeline_throughput",)  # created by the migrations in SQL, not part of metadata


# Daily partitions are made at run time (workbench.storage.partitions), not by migrations;
# schema_migrations is the old runner's record, dropped once a database is stamped.
_NOT_OURS = re.compile(r"^(transactions_p\d{8}|schema_migrations)$")


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's filter for autogenerate: what this metadata declares (not partitions, the
    old migration record or the views)."""
    if type_ == "table" and name is not None and (_NOT_OURS.match(name) or name in VIEWS):
        return False
    table = getattr(obj, "table", None)
    return not (type_ == "index" and table is not None and _NOT_OURS.match(table.name))


def names(table: Table) -> tuple[str, ...]:
    """The column names of ``table``, in declaration (= storage) order."""
    return tuple(c.name for c in table.columns)


def postgres_type(column: Column) -> str:
    """The PostgreSQL type of ``column`` as DDL text (e.g. ``TEXT COLLATE "C"``)."""
    from sqlalchemy.dialects import postgresql

    return column.type.compile(dialect=postgresql.dialect())
