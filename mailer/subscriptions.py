"""Is the user still subscribed to the daily digest? Asked at send time, so that after an
unsubscribe no further digest goes out, even one recorded before it.

Answered from the event store (the User aggregate's latest preferences event, read by
event_store.digest_preference), not the read model: the read model lags the store by the relay ->
Kafka -> projector hop (longer while the projector is down), and the mailer, a separate consumer
group, may reach a digest before the projector applied the unsubscribe that followed it. The store
is where POST /unsubscribe wrote before it answered 200, so a check made after that answer always
sees it. It costs one indexed read per email, on the mailer's own connection (the one it records
processed_events with), asked for the next email right after this one is recorded, while the
next one's envelope goes out (mailer.delivery): that is, just before the next email's DATA.
"""

from __future__ import annotations

import asyncio
from typing import Protocol
from uuid import UUID

from event_store.application import TodoStore
from event_store.digest_preference import DigestPreferenceReader
from mailer.processed import MailerConnection


class Subscriptions(Protocol):
    async def digest_enabled(self, user_id: UUID) -> bool: ...

    async def close(self) -> None: ...


class StoreSubscriptions:
    def __init__(self, store: TodoStore, connection: MailerConnection) -> None:
        self._store = store  # its mapper and table; its own pool is not used for this
        self._reader = DigestPreferenceReader(store)
        self._connection = connection

    async def digest_enabled(self, user_id: UUID) -> bool:
        # A digest of a user the store does not know cannot be checked: it is sent, as before.
        return await self._reader.digest_enabled(await self._connection.get(), user_id)

    async def close(self) -> None:
        await self._connection.close()
        await asyncio.to_thread(self._store.close)
