"""`processed_events` (migration 0002_mailer): the ids of digest events the mailer has finished
with. Checked once per polled batch; written right after each send, before the offset commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from uuid import UUID

import psycopg

log = logging.getLogger(__name__)


class MailerConnection:
    """The mailer's own PostgreSQL connection (autocommit): opened on first use, and again after
    it broke. processed_events and the subscription check (mailer.subscriptions) take turns on
    it: the mailer handles one email at a time."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def get(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class ProcessedEvents:
    def __init__(
        self, connection: MailerConnection, should_stop: Callable[[], bool] = lambda: False
    ) -> None:
        self._connection = connection
        self._should_stop = should_stop

    async def seen(self, event_ids: Iterable[UUID]) -> set[UUID]:
        ids = list(event_ids)
        if not ids:
            return set()
        conn = await self._connection.get()
        cur = await conn.execute(
            "select event_id from processed_events where event_id = any(%s)", (ids,)
        )
        return {row[0] for row in await cur.fetchall()}  # type: ignore[misc]

    async def record(self, event_id: UUID) -> None:
        """Durably record `event_id` (idempotent). The email is already out: try hard (about a
        minute, reconnecting) before giving up, as giving up means it may be sent again."""
        delay = 0.1
        for attempt in range(1, 12):
            try:
                conn = await self._connection.get()
                await conn.execute(
                    "insert into processed_events (event_id) values (%s)"
                    " on conflict (event_id) do nothing",
                    (event_id,),
                )
                return
            except psycopg.OperationalError as e:
                await self.close()
                if attempt == 11 or self._should_stop():
                    raise
                log.warning(
                    "could not record a processed event; retrying",
                    extra={"event_id": str(event_id), "error": str(e), "attempt": attempt},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        await self._connection.close()
