"""``workbench db upgrade|status|reset|url|roles``."""

from __future__ import annotations

import argparse

from workbench.errors import ConfigError
from workbench.pipeline.database import ROOT, component_roles, database, database_url
from workbench.settings import Settings
from workbench.storage import connect, counts, describe, reset, status, upgrade


def add_parser(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="Manage the database schema.")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    actions.add_parser("upgrade", help="Apply pending migrations.").set_defaults(run=run_upgrade)
    actions.add_parser("status", help="Show applied migrations and row counts.").set_defaults(
        run=run_status
    )
    actions.add_parser(
        "url",
        help="Print the database URL (no password) for notebooks and panel serve; starts nothing.",
    ).set_defaults(run=run_url)
    actions.add_parser(
        "roles",
        help="Create or update the least-privilege roles of the pipeline, dashboard and rule "
        "publisher (needs a connection allowed to CREATE ROLE); prints where their "
        "credentials went, never a password.",
    ).set_defaults(run=run_roles)
    r = actions.add_parser("reset", help="Drop every table of the workbench (asks for --yes).")
    r.add_argument("--yes", action="store_true", help="Really drop everything.")
    r.set_defaults(run=run_reset, check=check_reset)


def run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings, migrate=False) as dsn, connect(dsn) as conn:
        applied = upgrade(conn)
        print(
            f"{describe(dsn)}: applied {len(applied)} revision(s)"
            + (f": {', '.join(map(str, applied))}" if applied else " (up to date)")
        )
    return 0


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings, migrate=False) as dsn, connect(dsn) as conn:
        print(f"database {describe(dsn)}")
        revisions = status(conn)
        for m in revisions:
            print(f"  revision {m.revision} {'applied' if m.applied else 'pending':<8} {m.name}")
        if all(m.applied for m in revisions):
            for key, value in counts(conn).items():
                print(f"  {key:<14} {value:>12,}")
    return 0


def check_reset(args: argparse.Namespace) -> None:
    if not args.yes:
        raise ConfigError("db reset drops every workbench table; repeat with --yes")


def run_reset(args: argparse.Namespace, settings: Settings) -> int:
    check_reset(args)  # also when called directly, not through the CLI
    with database(settings, migrate=False) as dsn, connect(dsn) as conn:
        reset(conn)
        print(f"{describe(dsn)}: dropped every workbench table")
    return 0


def run_url(args: argparse.Namespace, settings: Settings) -> int:
    print(database_url(settings))
    return 0


def run_roles(args: argparse.Namespace, settings: Settings) -> int:
    from workbench.storage.credentials import PGPASS
    from workbench.storage.roles import ROLES

    with database(settings) as dsn:
        made = component_roles(settings, dsn, root=ROOT)
    print(f"{describe(dsn)}: roles {', '.join(ROLES.values())} ready")
    for c in made:
        note = "new password" if c.new_password else "password kept"
        print(f"  {c.component:<10} {c.dsn}  ({note})")
    print(
        f"passwords in {(ROOT / PGPASS).absolute()} (mode 0600, libpq format), which each URL "
        "names; set WORKBENCH_<COMPONENT>_DATABASE_URL to them"
    )
    return 0
