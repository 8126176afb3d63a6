"""The SQLAlchemy metadata (workbench.storage.tables) is exactly the migrated schema."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from workbench.schema import NAMES
from workbench.storage import prepared, tables, writer
from workbench.storage.connection import connect

pytestmark = pytest.mark.integration

# Everything PostgreSQL knows about a table's shape, as text.
_COLUMNS = """
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(co.collname, ''), a.attgenerated, coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
  AND c.relname NOT LIKE 'transactions\\_p%%' AND c.relname NOT IN ('alembic_version',
  'schema_migrations') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY 1, 2
"""
_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
  AND tablename NOT LIKE 'transactions\\_p%%' AND tablename NOT IN ('alembic_version',
  'schema_migrations')
ORDER BY 1, 2
"""
_CONSTRAINTS = """
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE 'transactions\\_p%%'
  AND c.relname NOT IN ('alembic_version', 'schema_migrations')
ORDER BY 1, 2
"""
_PARTITIONING = """
SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'p'
"""


def catalog(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    """The shape of every table of ours (not partitions, not migration bookkeeping)."""
    return {
        name: conn.execute(query).fetchall()
        for name, query in (
            ("columns", _COLUMNS),
            ("indexes", _INDEXES),
            ("constraints", _CONSTRAINTS),
            ("partitioning", _PARTITIONING),
        )
    }


def test_metadata_creates_exactly_the_migrated_schema(conn, databases):
    migrated = catalog(conn)
    assert migrated["partitioning"] == [("transactions", "RANGE (ts)")]
    with databases.fresh("wb_meta", template="template0") as dsn:
        engine = create_engine(
            "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=NullPool
        )
        tables.metadata.create_all(engine)
        engine.dispose()
        with connect(dsn) as fresh:
            created = catalog(fresh)
    for part in migrated:
        assert created[part] == migrated[part], part


def test_column_lists_come_from_the_metadata():
    tx = tables.names(tables.transactions)
    assert tx[: len(NAMES)] == NAMES
    assert tuple(n for n in tx if n != "stored_at") == prepared.DIRECT_COLUMNS
    # Staged rows have the stored types: exact money, byte-ordered ids.
    assert 'tx_id TEXT COLLATE "C"' in writer._STAGE_DDL
    assert "amount NUMERIC(14, 2)" in writer._STAGE_DDL
