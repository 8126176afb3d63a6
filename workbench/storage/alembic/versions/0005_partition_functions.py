"""Day partitions made and dropped by the schema owner's functions (least privilege).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Creating a partition of ``transactions`` needs ownership of it, and the pipeline's role must
own nothing (:mod:`workbench.storage.roles`). So the two DDL jobs of the pipeline are
``SECURITY DEFINER`` functions owned by whoever runs the migrations (the schema owner):

- ``workbench_create_partitions(days date[])``: the missing day partitions of ``days``;
  returns the days it created;
- ``workbench_drop_partitions(cutoff timestamptz)``: retention — detaches and drops every
  partition that ends at or before ``cutoff``, oldest first, and forgets the tx_ids stored
  before the end of the newest one dropped (the horizon of "one identity per transaction");
  returns the days dropped.

Both take the partition advisory lock (``workbench.storage.partitions.PARTITION_LOCK``) inside,
so concurrent writers never race on one ``CREATE TABLE``. A definer function runs with its
owner's rights, so it is pinned to the migrated schema and ``pg_temp`` last
(``SET search_path``): a caller cannot shadow ``transactions`` or a built-in with an object
of its own. EXECUTE is revoked from PUBLIC; ``workbench db roles`` grants it to the pipeline.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# 0x77620002: the same key as workbench.storage.partitions.PARTITION_LOCK.
# exec_driver_sql hands the text to psycopg, which reads % as a placeholder: doubled.
FUNCTIONS = """
CREATE FUNCTION workbench_create_partitions(days date[]) RETURNS SETOF date
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    day date;
BEGIN
    PERFORM pg_advisory_xact_lock(2002911234);
    FOR day IN SELECT DISTINCT d FROM unnest(days) AS d WHERE d IS NOT NULL ORDER BY d LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'transactions'::regclass
              AND c.relname = 'transactions_p' || to_char(day, 'YYYYMMDD')
        ) THEN
            EXECUTE format(
                'CREATE TABLE %%I PARTITION OF transactions FOR VALUES FROM (%%L) TO (%%L)',
                'transactions_p' || to_char(day, 'YYYYMMDD'),
                (day::timestamp AT TIME ZONE 'UTC'),
                ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            RETURN NEXT day;
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION workbench_drop_partitions(cutoff timestamptz) RETURNS SETOF date
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    part record;
    newest date;
BEGIN
    PERFORM pg_advisory_xact_lock(2002911234);
    FOR part IN
        SELECT c.relname AS name, to_date(substr(c.relname, 15), 'YYYYMMDD') AS day
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'transactions'::regclass
          AND c.relname ~ '^transactions_p[0-9]{8}$'
        ORDER BY 2
    LOOP
        EXIT WHEN ((part.day + 1)::timestamp AT TIME ZONE 'UTC') > cutoff;
        EXECUTE format('ALTER TABLE transactions DETACH PARTITION %%I', part.name);
        EXECUTE format('DROP TABLE %%I', part.name);
        newest := part.day;
        RETURN NEXT part.day;
    END LOOP;
    IF newest IS NOT NULL THEN
        -- In the same transaction: the ids never outlive (nor die before) their rows.
        DELETE FROM transaction_ids
        WHERE ts_us < (extract(epoch FROM (newest + 1)::timestamp AT TIME ZONE 'UTC')
                       * 1000000)::bigint;
    END IF;
END $$;

REVOKE EXECUTE ON FUNCTION workbench_create_partitions(date[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION workbench_drop_partitions(timestamptz) FROM PUBLIC;
"""


def upgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(FUNCTIONS)
    # Pinned to the schema the tables were made in (current_schema() of this migration).
    bind.exec_driver_sql("""
        DO $$ BEGIN
            EXECUTE format('ALTER FUNCTION workbench_create_partitions(date[])'
                           ' SET search_path = %%I, pg_temp', current_schema());
            EXECUTE format('ALTER FUNCTION workbench_drop_partitions(timestamptz)'
                           ' SET search_path = %%I, pg_temp', current_schema());
        END $$
    """)


def downgrade() -> None:
    op.get_bind().exec_driver_sql(
        "DROP FUNCTION workbench_create_partitions(date[]);"
        "DROP FUNCTION workbench_drop_partitions(timestamptz)"
    )
