"""The PostgreSQL server every tier of tests uses, and fresh databases on it.

The server comes from ``WORKBENCH_TEST_DSN`` (default: postgres on 127.0.0.1:5432, trust
auth). When that variable is not set and no server answers at the default address, an
embedded PostgreSQL is started for the session in a temporary directory. Every database
created here has a unique name and is dropped (WITH FORCE) afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import conninfo, sql

from workbench.storage.connection import connect, describe, one_line
from workbench.storage.migrations import upgrade

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _version(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as admin:
        return admin.info.server_version


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server DSN: the configured or default server, else an embedded one."""
    dsn = os.environ.get("WORKBENCH_TEST_DSN", DEFAULT_DSN)
    embedded = None
    try:
        version = _version(dsn)
    except psycopg.Error as exc:
        if "WORKBENCH_TEST_DSN" in os.environ:
            pytest.skip(
                f"no PostgreSQL at {describe(dsn)} ({one_line(exc)}); "
                "set WORKBENCH_TEST_DSN to a server where user can CREATE DATABASE"
            )
        from workbench.storage.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
        dsn = embedded.start()
        version = _version(dsn)
    if version < 140000:
        pytest.skip(f"PostgreSQL {version} at {describe(dsn)} is too old (need 14+)")
    try:
        yield dsn
    finally:
        if embedded is not None:
            embedded.stop()


class Databases:
    """Creates and drops uniquely named databases on the test server."""

    def __init__(self, server: str) -> None:
        self.server = server

    def dsn(self, name: str) -> str:
        return conninfo.make_conninfo(self.server, dbname=name)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.server, autocommit=True, connect_timeout=3)

    def create(self, prefix: str, *, template: str | None = None) -> str:
        """A new database named ``prefix_<pid>_<random>`` (a copy of ``template``)."""
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._admin() as admin:
            admin.execute(query)
        return name

    def drop(self, name: str) -> None:
        with self._admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextmanager
    def fresh(
        self, prefix: str, *, template: str | None = None, migrate: bool = False
    ) -> Iterator[str]:
        """DSN of a new database (migrated if asked), dropped on exit."""
        name = self.create(prefix, template=template)
        try:
            dsn = self.dsn(name)
            if migrate:
                with connect(dsn) as conn:
                    upgrade(conn)
            yield dsn
        finally:
            self.drop(name)


@pytest.fixture(scope="session")
def databases(pg_server: str) -> Databases:
    return Databases(pg_server)
