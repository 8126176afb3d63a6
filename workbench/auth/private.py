"""Files only this OS user may read: the credentials file and the cookie secret.

Both are written atomically — a temporary file in the same directory, created with mode 0600
(never readable by others, not even for a moment), flushed to disk, then renamed over the old
one — so a crash or a concurrent reader never sees half a file, and a reader of the old file
keeps a consistent copy.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "secret"
>>> write_private(path, "s" * 40)
>>> oct(path.stat().st_mode & 0o777), cookie_secret(path) == "s" * 40
('0o600', True)
>>> new = cookie_secret(path.with_name("new"))
>>> len(new), cookie_secret(path.with_name("new")) == new
(64, True)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from workbench.errors import ConfigError

__all__ = ["cookie_secret", "write_private"]

SECRET_BYTES = 48  # token_urlsafe(48): 64 characters, 384 bits


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically, mode 0600 (its directory is created 0700)."""
    path = Path(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def cookie_secret(path: Path) -> str:
    """The secret that signs session cookies: read from ``path``, or generated there once.

    Persistent, so logins survive a restart of the dashboard; a file readable by others is
    refused (anyone holding the secret can forge any user's cookie).
    """
    path = Path(path)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"{path} is readable by other users (mode {mode:o}): run chmod 600 {path}"
            )
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret) >= 32:
            return secret
        raise ConfigError(f"{path} holds no usable secret: delete it to generate a new one")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    write_private(path, secret + "\n")
    return secret
