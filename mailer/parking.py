"""The mailer's side of sequenced dead letters (consuming.parking): a digest refused for good, or a
digest message that cannot be decoded, is parked in `dead_letters` under the mailer's consumer
group; later messages of the same digest wait behind it. One small synchronous connection, used
from a worker thread so the event loop never blocks on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from consuming import parking
from contracts.dead_letters import DeadLetter


class PostgresParking:
    def __init__(self, conninfo: str, consumer: str) -> None:
        self._conninfo = conninfo
        self._consumer = consumer
        self._conn: psycopg.Connection[Any] | None = None

    async def blockers(self, aggregate_ids: Sequence[str]) -> parking.Blockers:
        return await asyncio.to_thread(self._blockers, aggregate_ids)

    async def park(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        return await asyncio.to_thread(self._park, letters)

    def _blockers(self, aggregate_ids: Sequence[str]) -> parking.Blockers:
        with self._transaction() as cur:
            return parking.blockers(cur, self._consumer, aggregate_ids)

    def _park(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        with self._transaction() as cur:
            return parking.park(cur, letters)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._drop()  # maybe broken: reconnect on the next call
            raise

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._conninfo, connect_timeout=5)
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        self._drop()
