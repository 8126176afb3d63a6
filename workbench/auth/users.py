"""The credentials file of the dashboard's login: user -> argon2 hash, role, dates.

A JSON document, mode 0600, written atomically (:mod:`workbench.auth.private`) under an
exclusive lock, so two ``workbench users`` commands never lose each other's change::

    {"version": 1,
     "users": {"alice": {"hash": "$argon2id$...", "role": "analyst",
                         "created": "2026-12-06T23:50:00+00:00", "changed": "..."}}}

Passwords are hashed with argon2id (``argon2.PasswordHasher``: a salt per hash, the library's
memory-hard defaults) and checked with its verify, which compares in constant time. A name
that is not in the file still costs one verify against a dummy hash, so the time a refused
login takes does not tell whether the user exists. The file is re-read on every check: a
role change or a removal takes effect at the next request without a restart.

>>> import tempfile, pathlib
>>> users = UsersFile(pathlib.Path(tempfile.mkdtemp()) / "users.json")
>>> users.add("alice", "correct horse", "analyst").role
<Role.ANALYST: 2>
>>> users.verify("alice", "correct horse").name, users.verify("alice", "wrong")
('alice', None)
>>> users.verify("bob", "correct horse") is None  # unknown: also a full hash verify
True
>>> users.add("bob!", "correct horse", "viewer")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
workbench.errors.ConfigError: invalid user name 'bob!': 1-64 letters, digits and . _ @ - ...
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from workbench.auth.private import write_private
from workbench.auth.roles import Role
from workbench.errors import ConfigError

__all__ = ["DEFAULT_PATH", "User", "UsersFile", "check_name", "check_password"]

DEFAULT_PATH = Path(".workbench") / "users.json"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD, MAX_PASSWORD = 8, 1024  # characters; the bound keeps a login from costing more
FORMAT = 1

Audit = Callable[["User | None", "User | None"], None]
"""Called with (before, after) once a change is decided, before the file is written: when it
raises, the file is left as it was (``workbench users`` writes the audit row there)."""

_hasher = PasswordHasher()
_dummy: str | None = None  # hashed on the first refused name, not at import


@dataclass(frozen=True)
class User:
    """One account as ``users list`` shows it: never the hash."""

    name: str
    role: Role
    created: str
    changed: str

    def public(self) -> dict[str, str]:
        """For the audit trail and listings (no hash)."""
        return {"name": self.name, "role": self.role.label, "created": self.created}


def check_name(name: str) -> str:
    """``name`` if it is a valid user name, else a ConfigError (e-mail addresses are valid)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(
            f"invalid user name {str(name)[:80]!r}: 1-64 letters, digits and . _ @ - "
            "(starting with a letter or digit)"
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(
            f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters "
            f"(this one has {len(password)})"
        )
    return password


class UsersFile:
    """The credentials file at ``path``; every method reads it afresh."""

    def __init__(self, path: Path | str = DEFAULT_PATH) -> None:
        self.path = Path(path)

    # -- reading --------------------------------------------------------------------------------

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            mode = self.path.stat().st_mode & 0o777
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if mode & 0o077:
            raise ConfigError(
                f"{self.path} is readable by other users (mode {mode:o}): run chmod 600 {self.path}"
            )
        try:
            document = json.loads(text)
            users = document["users"]
            if document.get("version") != FORMAT or not isinstance(users, dict):
                raise ValueError("unknown format")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"{self.path} is not a workbench credentials file") from None
        return users

    def users(self) -> list[User]:
        """Every account, sorted by name."""
        return [self._user(name, entry) for name, entry in sorted(self._read().items())]

    def get(self, name: str) -> User | None:
        entry = self._read().get(name)
        return None if entry is None else self._user(name, entry)

    def __bool__(self) -> bool:
        """Whether the file holds at least one account (then the login is on)."""
        return bool(self._read())

    def verify(self, name: str, password: str) -> User | None:
        """The account if ``password`` is its password, else None, in about the same time
        whether the name exists or not."""
        global _dummy
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return None
        entry = self._read().get(name) if isinstance(name, str) else None
        if entry is None:
            if _dummy is None:
                _dummy = _hasher.hash("not a password of anyone")
            with contextlib.suppress(VerificationError, InvalidHashError):
                _hasher.verify(_dummy, password)
            return None
        try:
            _hasher.verify(entry["hash"], password)
        except VerifyMismatchError:
            return None
        except (VerificationError, InvalidHashError, KeyError):
            return None
        return self._user(name, entry)

    # -- changing -------------------------------------------------------------------------------

    def add(
        self, name: str, password: str, role: Role | str, *, audit: Audit | None = None
    ) -> User:
        """A new account; a ConfigError if the name is taken."""
        check_name(name)
        role = Role.parse(role)
        digest = _hasher.hash(check_password(password))
        now = _now()
        with self._editing() as users:
            if name in users:
                raise ConfigError(f"user {name!r} exists already (remove it first)")
            users[name] = {"hash": digest, "role": role.label, "created": now, "changed": now}
            after = self._user(name, users[name])
            if audit is not None:
                audit(None, after)
            return after

    def remove(self, name: str, *, audit: Audit | None = None) -> User:
        """Delete an account; the removed one (a ConfigError if there is none)."""
        with self._editing() as users:
            before = self._user(name, users.pop(self._known(users, name)))
            if audit is not None:
                audit(before, None)
            return before

    def set_role(
        self, name: str, role: Role | str, *, audit: Audit | None = None
    ) -> tuple[User, User]:
        """Change an account's role: (before, after)."""
        role = Role.parse(role)
        with self._editing() as users:
            entry = users[self._known(users, name)]
            before = self._user(name, entry)
            entry.update(role=role.label, changed=_now())
            after = self._user(name, entry)
            if audit is not None:
                audit(before, after)
            return before, after

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, dict[str, str]]]:
        """The accounts under an exclusive lock; written back when the block succeeds."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            users = self._read()
            yield users
            write_private(self.path, json.dumps({"version": FORMAT, "users": users}, indent=1))
        finally:
            os.close(fd)

    @staticmethod
    def _known(users: dict, name: str) -> str:
        if name not in users:
            raise ConfigError(f"no user {str(name)[:80]!r}")
        return name

    def _user(self, name: str, entry: dict[str, str]) -> User:
        try:
            role = Role.parse(entry["role"])
        except (KeyError, ConfigError):
            raise ConfigError(f"{self.path}: user {name!r} has no valid role") from None
        return User(name, role, entry.get("created", ""), entry.get("changed", ""))


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
