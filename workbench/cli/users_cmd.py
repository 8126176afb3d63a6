"""``workbench users add|remove|list|set-role``: the accounts of the dashboard's login.

Passwords are read from a prompt (twice) or, for scripts, from standard input
(``--password-stdin``) — never from the command line, where ``ps`` and the shell history
would show them. Every change is written to the audit trail (action ``user.add``,
``user.remove``, ``user.set_role``; actor ``cli:<OS user>``; before/after without hashes) in a
transaction that commits only once the credentials file is written: no change without its
audit row. The database is the one every command uses (configured, else the embedded one,
found or started); when it cannot be reached, nothing is changed.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from collections.abc import Iterator
from pathlib import Path

from workbench.auth.roles import Role
from workbench.auth.users import User, UsersFile, check_name, check_password
from workbench.errors import ConfigError
from workbench.settings import Settings

ROLES = ", ".join(r.label for r in Role)


def add_parser(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="Manage the accounts of the dashboard's login.")
    actions = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="Add an account (the password is asked for).")
    add.add_argument("name", metavar="NAME", type=_name, help="Login name (e-mail allowed).")
    add.add_argument("--role", required=True, type=_role, help=f"One of {ROLES}.")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="Read the password from the first line of standard input (for scripts).",
    )
    add.set_defaults(run=run_add)

    remove = actions.add_parser("remove", help="Remove an account.")
    remove.add_argument("name", metavar="NAME", type=_name)
    remove.set_defaults(run=run_remove)

    actions.add_parser("list", help="List accounts: name, role, created.").set_defaults(
        run=run_list
    )

    role = actions.add_parser("set-role", help="Change an account's role.")
    role.add_argument("name", metavar="NAME", type=_name)
    role.add_argument("--role", required=True, type=_role, help=f"One of {ROLES}.")
    role.set_defaults(run=run_set_role)


def _name(text: str) -> str:
    try:
        return check_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _role(text: str) -> Role:
    try:
        return Role.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _file(settings: Settings) -> UsersFile:
    return UsersFile(Path(settings.auth_users_file))


def read_password(from_stdin: bool) -> str:
    """The new password: a line of stdin, or typed twice at a prompt (never echoed)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to ask for the password: use --password-stdin")
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing changed")
    return check_password(password)


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@contextlib.contextmanager
def audited(settings: Settings, action: str, name: str) -> Iterator:
    """An ``audit(before, after)`` hook whose row commits only if the block succeeds."""
    from workbench.pipeline.database import database
    from workbench.storage import audit, connect

    with database(settings) as dsn, connect(dsn) as conn, conn.transaction():

        def record(before: User | None, after: User | None) -> None:
            audit.record(
                conn,
                actor=actor(),
                action=action,
                provider="cli",
                object=f"user:{name}",
                before=None if before is None else before.public(),
                after=None if after is None else after.public(),
            )

        yield record


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    users = _file(settings)
    if users.get(args.name) is not None:  # before asking for a password
        raise ConfigError(f"user {args.name!r} exists already (remove it first)")
    password = read_password(args.password_stdin)
    with audited(settings, "user.add", args.name) as audit:
        user = users.add(args.name, password, args.role, audit=audit)
    print(f"added {user.name} ({user.role.label}) to {users.path}")
    return 0


def run_remove(args: argparse.Namespace, settings: Settings) -> int:
    users = _file(settings)
    if users.get(args.name) is None:
        raise ConfigError(f"no user {args.name!r} in {users.path}")
    with audited(settings, "user.remove", args.name) as audit:
        user = users.remove(args.name, audit=audit)
    print(f"removed {user.name} ({user.role.label}) from {users.path}")
    return 0


def run_set_role(args: argparse.Namespace, settings: Settings) -> int:
    users = _file(settings)
    if users.get(args.name) is None:
        raise ConfigError(f"no user {args.name!r} in {users.path}")
    with audited(settings, "user.set_role", args.name) as audit:
        before, after = users.set_role(args.name, args.role, audit=audit)
    print(f"{after.name}: {before.role.label} -> {after.role.label}")
    return 0


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    users = _file(settings)
    rows = users.users()
    if not rows:
        print(f"no users in {users.path}: the dashboard has no login (loopback only)")
        return 0
    width = max(len(u.name) for u in rows)
    for user in rows:
        print(f"{user.name:<{width}}  {user.role.label:<11}  {user.created}")
    return 0
