"""Least privilege in PostgreSQL: one LOGIN role per component, with only what it needs.

``workbench db roles`` (and ``workbench up``) run :func:`ensure` with the schema owner's
connection. It creates, or brings up to date, three roles — none superuser, CREATEDB,
CREATEROLE, REPLICATION or BYPASSRLS, none owning anything:

============  =====================  ==========================================================
component     role                   may
============  =====================  ==========================================================
pipeline      ``workbench_pipeline``  store batches: INSERT (and the SELECT its RETURNING and
                                     reads need) on the tables a batch writes, the alert
                                     upserts' columns of ``alerts``, open ``cases`` and
                                     update their counters, record rule-set loads,
                                     create/drop day partitions only through the owner's
                                     functions (revision 0005), append to ``audit_log``
dashboard     ``workbench_dashboard`` read what it shows; of ``alerts`` UPDATE only the
                                     analyst's columns (status, disposition, assignee, notes,
                                     closed_at, updated_at), of ``cases`` the work columns
                                     (status, assignee, claimed_at, outcome, closed_at,
                                     updated_at), add ``case_events``; append to ``labels`` and
                                     ``audit_log``; never
                                     write transactions or rule sets
publisher     ``workbench_publisher`` record and announce rule sets (publish, rollback): SELECT
                                     + INSERT on ``rule_sets``, SELECT on ``transactions`` (the
                                     dry run), append to ``audit_log``
============  =====================  ==========================================================

:data:`PRIVILEGES` says it per table, and every table of :data:`tables.metadata` must have a
row (a test checks it): a revision adding a table (cases, lists) adds its row, deciding
each role's rights, and ``db roles`` grants them. ``audit_log`` is append-only for everyone
(its trigger, revision 0004); no role gets UPDATE or DELETE on it either.

Roles are cluster-wide, privileges per database, so one server can hold several workbench
databases: each ``ensure`` grants in its own database. Two processes creating a role at once
is not an error (SQLSTATE 42710/23505 means "made meanwhile"). Passwords are generated,
stored in the workbench's pgpass file (:mod:`workbench.storage.credentials`) and sent as
SCRAM verifiers. A role that exists, but whose password this file does not hold, gets a new
one (another installation on the same server then has to run ``db roles`` again).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import psycopg
from psycopg import conninfo, errors, sql

from workbench.errors import StorageError
from workbench.storage.connection import connect, storage_errors
from workbench.storage.credentials import PasswordFile, new_password, scram_verifier, with_passfile

ROLES = {
    "pipeline": "workbench_pipeline",
    "dashboard": "workbench_dashboard",
    "publisher": "workbench_publisher",
}

_ALERT_UPSERT = "UPDATE (hit_count, band, risk_score, rules, last_ts, updated_at, case_id)"
_CASE_UPSERT = (
    "UPDATE (alert_count, hit_count, band, max_score, max_amount, currency, rules, last_ts,"
    " updated_at)"
)
_CASE_WORK = "UPDATE (status, assignee, claimed_at, updated_at, closed_at, outcome)"
_DISPOSITION = "UPDATE (status, disposition, assignee, notes, closed_at, updated_at)"

# Per table (and view), each component's privileges ("" = none). Every table of the metadata
# has a row: a new table must decide here (tests/integration/test_db_roles.py checks it).
PRIVILEGES: dict[str, dict[str, str]] = {
    "transactions": {"pipeline": "SELECT, INSERT", "dashboard": "SELECT", "publisher": "SELECT"},
    "transaction_ids": {"pipeline": "SELECT, INSERT", "dashboard": "", "publisher": ""},
    "rule_sets": {
        "pipeline": "SELECT, INSERT",
        "dashboard": "SELECT",
        "publisher": "SELECT, INSERT",
    },
    "alerts": {
        "pipeline": f"SELECT, INSERT, {_ALERT_UPSERT}",
        "dashboard": f"SELECT, {_DISPOSITION}",
        "publisher": "",
    },
    # Cases: the batch keeps counts current, analysts claim, assign and close (revision 0008).
    "cases": {
        "pipeline": f"SELECT, INSERT, {_CASE_UPSERT}",
        "dashboard": f"SELECT, {_CASE_WORK}",
        "publisher": "",
    },
    "case_events": {"pipeline": "INSERT", "dashboard": "SELECT, INSERT", "publisher": ""},
    "alert_hits": {"pipeline": "SELECT, INSERT", "dashboard": "SELECT", "publisher": ""},
    "dead_letters": {"pipeline": "SELECT, INSERT", "dashboard": "SELECT", "publisher": ""},
    # Append-only: analysts' dispositions write labels (in the disposition's transaction);
    # the pipeline reads them for label-aware features. Nobody updates or deletes one.
    "labels": {"pipeline": "SELECT", "dashboard": "SELECT, INSERT", "publisher": ""},
    "pipeline_stats": {"pipeline": "SELECT, INSERT", "dashboard": "SELECT", "publisher": ""},
    "pipeline_throughput": {"pipeline": "", "dashboard": "SELECT", "publisher": ""},
    # Append only (and read back the new row's id: RETURNING id needs SELECT on it).
    "audit_log": {
        "pipeline": "INSERT, SELECT (id)",
        "dashboard": "SELECT, INSERT",
        "publisher": "INSERT, SELECT (id)",
    },
    "alert_evidence": {"pipeline": "SELECT, INSERT", "dashboard": "SELECT", "publisher": ""},
    # Lists and snoozes: edited by analysts in the dashboard, read by the scoring pipeline.
    "list_entries": {"pipeline": "SELECT", "dashboard": "SELECT, INSERT, DELETE", "publisher": ""},
    "rule_snoozes": {
        "pipeline": "SELECT",
        "dashboard": "SELECT, INSERT, UPDATE (lifted_at, lifted_by)",
        "publisher": "",
    },
    # The challenger: set, cleared and promoted through the publisher's role (CLI,
    # dashboard); the pipeline follows it and stores its scores (revision 0011).
    "shadow_rule_sets": {
        "pipeline": "SELECT",
        "dashboard": "SELECT",
        "publisher": "SELECT, INSERT",
    },
    # DELETE: retention drops the scores of the days it drops (partitions.retention).
    "shadow_scores": {
        "pipeline": "SELECT, INSERT, DELETE",
        "dashboard": "SELECT",
        "publisher": "",
    },
    # Every component checks that the schema is current before it starts (no DDL).
    "alembic_version": {"pipeline": "SELECT", "dashboard": "SELECT", "publisher": "SELECT"},
}
# Owner's SECURITY DEFINER functions a component may call (revision 0005).
FUNCTIONS = {
    "pipeline": ("workbench_create_partitions(date[])", "workbench_drop_partitions(timestamptz)")
}
_PRIVILEGED = {
    "rolsuper": "SUPERUSER",
    "rolcreatedb": "CREATEDB",
    "rolcreaterole": "CREATEROLE",
    "rolreplication": "REPLICATION",
    "rolbypassrls": "BYPASSRLS",
}
_GRANTS_LOCK = 0x77620003  # serialises concurrent `db roles` on one database
_RETRIES = 20


@dataclass(frozen=True)
class Credentials:
    """Where a component's login went: its DSN (no password: it names the pgpass file)."""

    component: str
    role: str
    dsn: str
    new_password: bool


def ensure(admin_dsn: str, passwords: PasswordFile, *, any_port: bool = False) -> list[Credentials]:
    """Create or update the roles and grant their privileges in ``admin_dsn``'s database.

    ``admin_dsn`` must be allowed to CREATE ROLE and GRANT on the workbench's tables (their
    owner, or a superuser). ``any_port``: the password file entries hold for any port (the
    embedded server, whose port may change). Idempotent; safe to run from several processes.
    """
    params = conninfo.conninfo_to_dict(admin_dsn)
    host = str(params.get("host") or "localhost")
    host = "localhost" if host.startswith("/") else host  # a socket: libpq's pgpass key
    port = "*" if any_port else str(params.get("port") or "5432")
    made: list[Credentials] = []
    with connect(admin_dsn) as conn, passwords.editing() as entries:
        for component, role in ROLES.items():
            known = entries.get((host, port, role))
            password = known or new_password()
            _create_or_update(conn, role, password, set_password=known is None)
            entries[(host, port, role)] = password
            dsn = with_passfile(admin_dsn, passwords.path, user=role)
            made.append(Credentials(component, role, dsn, known is None))
        _grant(conn)
    return made


def dsns(credentials: list[Credentials]) -> dict[str, str]:
    """``{component: dsn}``."""
    return {c.component: c.dsn for c in credentials}


def _create_or_update(
    conn: psycopg.Connection, role: str, password: str, *, set_password: bool
) -> None:
    name = sql.Identifier(role)
    verifier = sql.Literal(scram_verifier(password))
    for attempt in range(_RETRIES):
        try:
            row = conn.execute(
                f"SELECT {', '.join(_PRIVILEGED)}, rolcanlogin FROM pg_roles WHERE rolname = %s",
                (role,),
            ).fetchone()
            if row is None:
                conn.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                        " NOBYPASSRLS PASSWORD {}"
                    ).format(name, verifier)
                )
                return
            powers = [p for p, on in zip(_PRIVILEGED.values(), row, strict=False) if on]
            if powers:
                raise StorageError(
                    f"role {role} exists with {', '.join(powers)}: a workbench role must not; "
                    f"drop it or ALTER ROLE {role} NO{' NO'.join(powers)}"
                )
            if set_password or not row[-1]:
                conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(name, verifier))
            return
        except (errors.DuplicateObject, errors.UniqueViolation):
            continue  # another process created it meanwhile: it exists now
        except psycopg.errors.InternalError as exc:
            # Two sessions altering one role at once: "tuple concurrently updated".
            if "concurrently" not in str(exc) or attempt == _RETRIES - 1:
                raise StorageError(f"cannot create role {role}: {exc}") from None
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        except psycopg.Error as exc:
            raise StorageError(f"cannot create role {role}: {str(exc).strip()}") from None
    raise StorageError(f"cannot create role {role}: it keeps changing under us")


def _grant(conn: psycopg.Connection) -> None:
    """Revoke, then grant exactly :data:`PRIVILEGES`, in one transaction (so a concurrent
    reader never sees a role without its rights)."""
    roles = [sql.Identifier(r) for r in ROLES.values()]
    everyone = sql.SQL(", ").join(roles)
    with storage_errors("cannot grant the workbench roles' privileges"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_GRANTS_LOCK,))
        schema = sql.Identifier(conn.execute("SELECT current_schema()").fetchone()[0])
        database = sql.Identifier(conn.info.dbname)
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, everyone)
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, everyone))
        # Nobody but the owner creates objects here (PostgreSQL 15+ already says so for
        # public; older servers let every user create tables there, which a role would own).
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema))
        present = {
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_class c"
                " WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)",
                (list(PRIVILEGES),),
            )
        }
        for table in sorted(present):
            target = sql.Identifier(table)
            conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(target, everyone))
            for component, privileges in PRIVILEGES[table].items():
                if privileges:
                    # Column lists and keywords only, from the constant above.
                    conn.execute(
                        sql.SQL("GRANT " + privileges + " ON {} TO {}").format(
                            target, sql.Identifier(ROLES[component])
                        )
                    )
            if "INSERT" in " ".join(PRIVILEGES[table].values()):
                _grant_sequence(conn, table)
        for component, functions in FUNCTIONS.items():
            for function in functions:
                conn.execute(
                    sql.SQL("GRANT EXECUTE ON FUNCTION " + function + " TO {}").format(
                        sql.Identifier(ROLES[component])
                    )
                )


def _grant_sequence(conn: psycopg.Connection, table: str) -> None:
    """USAGE on the id sequence of ``table`` to the roles that insert into it."""
    seq = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = (SELECT pg_get_serial_sequence(quote_ident(%s), 'id')"
        "                WHERE EXISTS (SELECT 1 FROM information_schema.columns"
        "                              WHERE table_name = %s AND column_name = 'id'"
        "                                AND table_schema = current_schema()))::regclass",
        (table, table),
    ).fetchone()
    if seq is None:
        return
    inserters = [sql.Identifier(ROLES[c]) for c, p in PRIVILEGES[table].items() if "INSERT" in p]
    conn.execute(
        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
            sql.Identifier(*seq), sql.SQL(", ").join(inserters)
        )
    )
