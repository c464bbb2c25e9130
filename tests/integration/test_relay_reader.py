"""The relay reads the store with its own prepared statement on the connection it holds; it must
return exactly what eventsourcing's `select_notifications` returns for the same position, limit and
public topics (every field, in store order), or the relay would publish something else."""

from __future__ import annotations

from uuid import uuid4

import psycopg

from event_store.public import PUBLIC_TOPICS
from event_store.relay_reader import NotificationReader
from runtime.settings import DatabaseSettings
from tests.support.system import store_for


def test_the_relay_reader_returns_what_select_notifications_returns_for_every_start_and_limit(
    db_settings: DatabaseSettings,
) -> None:
    with store_for(db_settings) as store:
        user = store.register_user(f"{uuid4().hex[:6]}@example.com", "h").aggregate.id
        tasks = [store.create_task(user, f"task {n}").aggregate.id for n in range(4)]
        store.update_task(user, tasks[0], done=True)
        store.delete_task(user, tasks[1])
        store.change_preferences(user, timezone="Europe/Paris")
        head = store.queries.head_position()
        with psycopg.connect(db_settings.conninfo, autocommit=True) as conn:
            reader = NotificationReader(conn, store)
            for start in range(0, head + 1):
                for limit in (1, 3, 500):
                    expected = store.recorder.select_notifications(
                        start=start, limit=limit, topics=PUBLIC_TOPICS, inclusive_of_start=False
                    )
                    assert reader.after(start, limit) == expected, (start, limit)
            assert len(reader.after(0, 500)) >= 8  # the user, four tasks, two changes, preferences
