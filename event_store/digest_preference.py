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
from psycopg import sql

from event_store.application import PREFERENCES_TOPIC, TodoStore
from event_store.domain.model import User


class DigestPreferenceReader:
    def __init__(self, store: TodoStore) -> None:
        recorder = store.recorder
        if not isinstance(recorder, PostgresApplicationRecorder):
            raise TypeError("the digest preference is read from PostgreSQL only")
        table = sql.Identifier(recorder.datastore.schema, recorder.events_table_name)
        self._latest = sql.SQL(
            "SELECT originator_id, originator_version, state FROM {}"
            " WHERE originator_id = %s AND topic = %s ORDER BY originator_version DESC LIMIT 1"
        ).format(table)
        self._mapper = store.mapper

    async def digest_enabled(self, conn: psycopg.AsyncConnection[Any], user_id: UUID) -> bool:
        """The user's digest preference now (True for a user the store does not know)."""
        cursor = await conn.execute(self._latest, (user_id, PREFERENCES_TOPIC))
        row = await cursor.fetchone()
        if row is None:
            return True
        originator_id, version, state = row
        stored = StoredEvent(originator_id, version, PREFERENCES_TOPIC, bytes(state))
        event = self._mapper.to_domain_event(stored)
        assert isinstance(event, User.PreferencesChanged)
        return event.digest_enabled
