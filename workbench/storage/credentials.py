"""Database passwords: generated here, stored in one libpq password file, never printed.

Every password the workbench makes (the embedded server's superuser, the least-privilege
roles of :mod:`workbench.storage.roles`) goes into one *pgpass* file, ``.workbench/pgpass``
by default, written with mode 0600 (libpq ignores a password file that others may read).
The DSNs handed between processes name that file instead of carrying a secret::

    postgresql://workbench_pipeline@127.0.0.1:5432/workbench?passfile=/abs/.workbench/pgpass

So a DSN may be printed, logged, put in a child's environment or given to a notebook: it
holds no password, and libpq (psycopg, psql with ``PGPASSFILE``) reads the password from the
file when it connects.

Passwords reach the server as SCRAM-SHA-256 *verifiers* (:func:`scram_verifier`), computed
here: the plain text never travels, so a server logging statements (``log_statement=all``)
records no usable password.

>>> v = scram_verifier("pencil", salt=b"0123456789abcdef", iterations=4096)
>>> v.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
True
>>> pgpass_line("127.0.0.1", 5432, "*", "a:b", "p\\\\w")
'127.0.0.1:5432:*:a\\\\:b:p\\\\\\\\w'
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from psycopg import conninfo

from workbench.errors import StorageError

PGPASS = "pgpass"  # the file's name under the workbench root (.workbench/)
SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)


def new_password() -> str:
    """A random password: 256 bits, URL-safe characters (no quoting needed anywhere)."""
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 0) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677).

    ``ALTER ROLE ... PASSWORD '<verifier>'`` sets the password without sending it. The
    generated passwords are ASCII, for which SASLprep changes nothing.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    iterations = iterations or SCRAM_ITERATIONS
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def pgpass_line(host: str, port: int | str, dbname: str, user: str, password: str) -> str:
    """One line of a libpq password file (``:`` and ``\\`` escaped)."""

    def esc(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    return ":".join(esc(v) for v in (host, port, dbname, user, password))


class PasswordFile:
    """The workbench's libpq password file: read and updated under an exclusive ``flock``.

    Entries are keyed by host, port and user (database ``*``: a role is cluster-wide).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()

    def lookup(self, host: str, port: int | str, user: str) -> str | None:
        """The stored password of ``user`` on ``host:port``, or None."""
        with self.editing(write=False) as entries:
            return entries.get((host, str(port), user))

    def store(self, host: str, port: int | str, user: str, password: str) -> None:
        """Add or replace the entry of ``user`` on ``host:port``."""
        with self.editing() as entries:
            entries[(host, str(port), user)] = password

    @contextlib.contextmanager
    def editing(self, *, write: bool = True) -> Iterator[dict[tuple[str, str, str], str]]:
        """The entries ``{(host, port, user): password}``, locked for the block and written
        back at its end (``write``); a block that raises writes nothing. Holding the lock
        across a password change on the server keeps two processes from setting two
        different passwords of which the file keeps one."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open password file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "r+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            os.fchmod(fh.fileno(), 0o600)  # libpq ignores a file others may read
            entries = _parse(fh.read())
            yield entries
            if write:
                # libpq takes the first matching line: exact ports before the wildcard.
                ordered = sorted(entries.items(), key=lambda kv: kv[0][1] == "*")
                text = "".join(pgpass_line(h, p, "*", u, pw) + "\n" for (h, p, u), pw in ordered)
                fh.seek(0)
                fh.truncate()
                fh.write("# written by Fraud Workbench: host:port:database:user:password\n" + text)
                fh.flush()
                os.fsync(fh.fileno())


def with_passfile(dsn: str, path: Path, **changes: str) -> str:
    """``dsn`` without its password, naming ``path`` as its password file; ``changes``
    replace other parameters (e.g. ``user``).

    >>> with_passfile("postgresql://a:pw@db:5432/wb", Path("/p"), user="b")
    'postgresql://b@db:5432/wb?passfile=/p'
    """
    from workbench.storage.dsn import public_url

    params = conninfo.conninfo_to_dict(dsn)
    params.pop("password", None)
    params.update(changes, passfile=str(path))
    return public_url(conninfo.make_conninfo(**params))


def _parse(text: str) -> dict[tuple[str, str, str], str]:
    entries: dict[tuple[str, str, str], str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields, current, escaped = [], "", False
        for ch in line:
            if escaped:
                current, escaped = current + ch, False
            elif ch == "\\":
                escaped = True
            elif ch == ":" and len(fields) < 4:
                fields.append(current)
                current = ""
            else:
                current += ch
        fields.append(current)
        if len(fields) == 5:
            host, port, _db, user, password = fields
            entries[(host, port, user)] = password
    return entries
