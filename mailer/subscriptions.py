"""Is the user still subscribed to the daily digest? Asked at send time, so that after an
unsubscribe no further digest goes out, even one recorded before it.

Answered from the event store (the User aggregate, through event_store's API), not the read
model: the read model lags the store by the relay -> Kafka -> projector hop (longer while the
projector is down), and the mailer, a separate consumer group, may reach a digest before the
projector applied the unsubscribe that followed it. The store is where POST /unsubscribe wrote
before it answered 200. It is asked once per polled batch, for all its users in one query (their
latest preferences events, one index probe each), started as the batch is planned and awaited by
its first email (mailer.delivery): an unsubscribe recorded before a batch starts is always
honoured; one recorded while the batch that holds the user's digest is being sent (at most
MAILER_BATCH_SIZE emails, about a second) may not stop that digest. Asking per email instead cost
a query, a thread hop and a decode for every email (docs/digest.md, "Throughput").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from event_store.application import TodoStore


class Subscriptions(Protocol):
    async def digest_preferences(self, user_ids: Sequence[UUID]) -> dict[UUID, bool]: ...

    async def close(self) -> None: ...


class StoreSubscriptions:
    def __init__(self, store: TodoStore) -> None:
        self._store = store

    async def digest_preferences(self, user_ids: Sequence[UUID]) -> dict[UUID, bool]:
        # A digest of a user the store does not know cannot be checked: it is sent, as before.
        return await asyncio.to_thread(self._store.digest_preferences, user_ids)

    async def close(self) -> None:
        await asyncio.to_thread(self._store.close)
