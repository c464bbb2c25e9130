"""TodoStore.digest_enabled for an asyncio caller, on a connection of its own: the mailer asks
before every email, on the connection it records processed_events with.

The same answer as TodoStore.digest_enabled (the user's latest PreferencesChanged event, one
indexed row; True without one), without the store's pool: no worker thread to hand the call to
(its hop cost the mailer more CPU than the query), and no transaction around one read (BEGIN and
ROLLBACK were two more round trips). The SQL on the store's table and the decoding of its event
stay here, in event_store.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from event_store.application import PREFERENCES_TOPIC, TodoStore
from event_store.domain.model import User
from event_store.postgres_queries import events_table, latest_event_statement


class DigestPreferenceReader:
    def __init__(self, store: TodoStore) -> None:
        recorder = store.recorder
        if not isinstance(recorder, PostgresApplicationRecorder):
            raise TypeError("the digest preference is read from PostgreSQL only")
        self._latest = latest_event_statement(events_table(recorder))
        self._mapper = store.mapper

    async def digest_enabled(self, conn: psycopg.AsyncConnection[Any], user_id: UUID) -> bool:
        """The user's digest preference now (True for a user the store does not know)."""
        cursor = await conn.execute(self._latest, (user_id, PREFERENCES_TOPIC))
        row = await cursor.fetchone()
        if row is None:
            return True
        originator_id, version, topic, state = row
        stored = StoredEvent(originator_id, version, topic, bytes(state))
        event = self._mapper.to_domain_event(stored)
        assert isinstance(event, User.PreferencesChanged)
        return event.digest_enabled
