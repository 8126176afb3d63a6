"""LISTEN for the pipeline's batch summaries on a dedicated connection.

A :class:`Listener` owns one autocommit connection that does nothing but ``LISTEN``; callers
poll it for the payloads that arrived. Connection loss raises
:class:`~workbench.errors.DatabaseUnavailable`; the caller reconnects by making a new one.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from workbench.storage.connection import connect, storage_errors
from workbench.storage.notify import CHANNEL


class Listener:
    """One LISTEN connection on ``channel`` (default: the pipeline's batch channel)."""

    def __init__(self, dsn: str, channel: str = CHANNEL, *, connect_timeout: int = 5) -> None:
        self.channel = channel
        self._conn: psycopg.Connection = connect(dsn, connect_timeout=connect_timeout)
        with storage_errors(f"cannot LISTEN on {channel}"):
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def poll(self, timeout: float, limit: int = 1000) -> list[str]:
        """Payloads that arrived: waits up to ``timeout`` seconds for the first one, returns
        as soon as it arrives together with any already queued (at most ``limit``)."""
        with storage_errors("lost the LISTEN connection"):
            got = list(self._conn.notifies(timeout=timeout, stop_after=1))
            if got and limit > 1:
                got += self._conn.notifies(timeout=0.001, stop_after=limit - 1)
            return [n.payload for n in got if n.channel == self.channel]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
