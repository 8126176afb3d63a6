"""Alembic environment: always online, on the connection the caller passes in.

:mod:`workbench.storage.migrations` builds the :class:`alembic.config.Config` in code and puts
a SQLAlchemy connection in ``config.attributes["connection"]`` (it holds the migration
advisory lock on that same session); there is no ``alembic.ini`` and no URL here.
"""

from __future__ import annotations

from alembic import context

from workbench.storage.tables import include_object, metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "workbench migrations run through workbench.storage.migrations (or `workbench db"
            " upgrade`), which pass the connection in"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
