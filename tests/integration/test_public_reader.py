"""event_store.public_reader reads the same public events as select_notifications + to_public,
the relay's path, on a real store: every event type, internal events left out, shards disjoint."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from common.events import DailyDigestRequested, PublicEvent
from common.settings import DatabaseSettings
from event_store.application import TodoStore, store_env
from event_store.public import PUBLIC_TOPICS, to_public
from event_store.public_reader import PublicEventReader
from event_store.store_queries import Shard
from tests.support.system import store_for

pytestmark = pytest.mark.integration


def record_every_event_type(store: TodoStore) -> None:
    for n in range(6):
        user = store.register_user(f"reader{n}@example.com", "hash").aggregate  # + an email claim
        task = store.create_task(user.id, f"task {n} \u00e9\u2603").aggregate
        store.update_task(user.id, task.id, title=f"renamed {n}")
        store.update_task(user.id, task.id, done=True)
        store.update_task(user.id, task.id, done=False)
        store.delete_task(user.id, task.id)
        store.request_daily_digest(user.id, date(2026, 12, n + 1), user.email, 3, 1, ["a", "b"])


def relayed(store: TodoStore, after: int, until: int) -> list[object]:
    notifications = store.recorder.select_notifications(
        after, 10_000, stop=until, topics=PUBLIC_TOPICS, inclusive_of_start=False
    )
    return [to_public(store.mapper, n) for n in notifications]


def test_the_reader_gives_exactly_the_relays_public_events_in_store_order(
    db_settings: DatabaseSettings,
) -> None:
    with store_for(db_settings) as store:
        record_every_event_type(store)
        head = store.head_position()
        reader = PublicEventReader(store)

        events = reader.read(0, head)

        assert events == relayed(store, 0, head)
        assert {e.type for e in events} == {
            "user.registered",
            "task.created",
            "task.renamed",
            "task.completed",
            "task.reopened",
            "task.deleted",
            "email.daily_digest.requested",
        }
        assert reader.read(5, 17) == relayed(store, 5, 17)
        assert reader.read(head, head + 100) == []


def test_shards_split_the_events_by_aggregate_and_keep_store_order_within_each(
    db_settings: DatabaseSettings,
) -> None:
    with store_for(db_settings) as store:
        record_every_event_type(store)
        head = store.head_position()
        reader = PublicEventReader(store)
        everything = reader.read(0, head)

        shards = [reader.read(0, head, Shard(i, 3)) for i in range(3)]

        assert sorted((e for s in shards for e in s), key=lambda e: e.position) == everything
        for shard in shards:
            assert [e.position for e in shard] == sorted(e.position for e in shard)
        owners = [{aggregate_of(e) for e in shard} for shard in shards]
        assert all(a.isdisjoint(b) for i, a in enumerate(owners) for b in owners[i + 1 :])


def aggregate_of(event: PublicEvent) -> UUID:
    if isinstance(event, DailyDigestRequested):
        return event.digest_id
    task_id: UUID | None = getattr(event, "task_id", None)  # every task event has one
    return task_id or event.user_id


def test_a_store_with_compressed_state_is_read_through_the_mappers_general_path(
    db_settings: DatabaseSettings,
) -> None:
    env = {**store_env(db_settings), "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"}
    store = TodoStore(env=env)
    try:
        record_every_event_type(store)
        head = store.head_position()

        events = PublicEventReader(store).read(0, head)

        assert len(events) == 6 * 7
        assert events == relayed(store, 0, head)
    finally:
        store.close()


def test_a_shard_outside_the_split_is_refused() -> None:
    with pytest.raises(ValueError, match="not a shard"):
        Shard(3, 3)
