"""The workbench's password file: libpq's format, escaped, 0600, exact ports first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.storage.credentials import PasswordFile, new_password


def test_entries_round_trip_with_the_characters_libpq_escapes(tmp_path: Path) -> None:
    file = PasswordFile(tmp_path / "pgpass")
    file.store("db", 5432, "odd:user", "pa:ss\\word")
    file.store("127.0.0.1", "*", "workbench", "x")
    assert PasswordFile(tmp_path / "pgpass").lookup("db", "5432", "odd:user") == "pa:ss\\word"
    assert file.lookup("db", 5433, "odd:user") is None
    lines = (tmp_path / "pgpass").read_text().splitlines()
    assert lines[1] == "db:5432:*:odd\\:user:pa\\:ss\\\\word"


def test_the_file_is_private_even_if_it_was_not(tmp_path: Path) -> None:
    path = tmp_path / "pgpass"
    path.write_text("")
    os.chmod(path, 0o644)
    PasswordFile(path).store("db", 5432, "u", new_password())
    assert path.stat().st_mode & 0o777 == 0o600


def test_exact_ports_come_before_the_wildcard(tmp_path: Path) -> None:
    # libpq uses the first matching line: a wildcard entry must not hide an exact one.
    file = PasswordFile(tmp_path / "pgpass")
    file.store("127.0.0.1", "*", "workbench_pipeline", "embedded")
    file.store("127.0.0.1", 5432, "workbench_pipeline", "external")
    lines = [x for x in (tmp_path / "pgpass").read_text().splitlines() if not x.startswith("#")]
    assert [x.split(":")[1] for x in lines] == ["5432", "*"]


def test_a_failed_edit_writes_nothing(tmp_path: Path) -> None:
    file = PasswordFile(tmp_path / "pgpass")
    file.store("db", 1, "u", "kept")
    with pytest.raises(RuntimeError), file.editing() as entries:
        entries[("db", "1", "u")] = "lost"
        raise RuntimeError("the server refused the new password")
    assert file.lookup("db", 1, "u") == "kept"


def test_passwords_are_long_and_need_no_quoting() -> None:
    password = new_password()
    assert len(password) >= 40 and password.replace("-", "").replace("_", "").isalnum()
