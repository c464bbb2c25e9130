"""Is the user still subscribed to the daily digest? Asked at send time, so that after an
unsubscribe no further digest goes out, even one recorded before it.

Answered from the event store (the User aggregate, through event_store's API), not the read
model: the read model lags the store by the relay -> Kafka -> projector hop (longer while the
projector is down), and the mailer, a separate consumer group, may reach a digest before the
projector applied the unsubscribe that followed it. The store is where POST /unsubscribe wrote
before it answered 200, so a send after that answer always sees it. It costs one indexed read
of the user's latest preferences event per email, on a worker thread, started while the previous
email is being sent (mailer.delivery).
"""

from __future__ import annotations

import asyncio
from typing import Protocol
from uuid import UUID

from event_store.application import TodoStore


class Subscriptions(Protocol):
    async def digest_enabled(self, user_id: UUID) -> bool: ...

    async def close(self) -> None: ...


class StoreSubscriptions:
    def __init__(self, store: TodoStore) -> None:
        self._store = store

    async def digest_enabled(self, user_id: UUID) -> bool:
        # A digest of a user the store does not know cannot be checked: it is sent, as before.
        return await asyncio.to_thread(self._store.digest_enabled, user_id)

    async def close(self) -> None:
        await asyncio.to_thread(self._store.close)
