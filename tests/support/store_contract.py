"""One test case for the event store, run against each backend it runs on (eventsourcing's own
pattern for its recorders): eventsourcing's in-memory POPO recorder (tests/unit/
test_store_in_memory.py) and PostgreSQL (tests/integration/test_store_on_postgres.py). A backend's
test class says where the store records (`backend_env`); the cases are the store's port
(event_store.store_queries) seen through TodoStore and the public reader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from uuid import UUID, uuid4

import pytest

from contracts.events import DailyDigestRequested, PublicEvent, encode_event
from event_store.application import DigestDetails, TodoStore
from event_store.domain.model import EmailAlreadyRegisteredError, digest_id_for
from event_store.public import PUBLIC_TOPICS, to_public
from event_store.public_reader import PublicEventReader
from event_store.store_queries import Shard

NewStore = Callable[..., TodoStore]  # new_store(**extra_env)


def record_every_event_type(store: TodoStore) -> None:
    for n in range(6):
        user = store.register_user(f"reader{n}@example.com", "hash").aggregate  # + an email claim
        task = store.create_task(user.id, f"task {n} \u00e9\u2603").aggregate
        store.update_task(user.id, task.id, title=f"renamed {n}")
        store.update_task(user.id, task.id, done=True)
        store.update_task(user.id, task.id, done=False)
        store.delete_task(user.id, task.id)
        day = date(2026, 12, n + 1)
        store.request_daily_digest(day, DigestDetails(user.id, user.email, 3, 1, ["a", "b"]))


def relayed(store: TodoStore, after: int, until: int) -> list[object]:
    """The public events as the relay reads them: eventsourcing's API, then `to_public`."""
    notifications = store.recorder.select_notifications(
        after, 10_000, stop=until, topics=PUBLIC_TOPICS, inclusive_of_start=False
    )
    return [to_public(store.mapper, n) for n in notifications]


def aggregate_of(event: PublicEvent) -> UUID:
    if isinstance(event, DailyDigestRequested):
        return event.digest_id
    task_id: UUID | None = getattr(event, "task_id", None)  # every task event has one
    return task_id or event.user_id


class StoreContract:
    @pytest.fixture
    def backend_env(self) -> dict[str, str]:
        raise NotImplementedError("each backend's test class says where the store records")

    @pytest.fixture
    def new_store(self, backend_env: dict[str, str]) -> Iterator[NewStore]:
        stores: list[TodoStore] = []

        def new(**extra_env: str) -> TodoStore:
            stores.append(TodoStore(env={**backend_env, **extra_env}))
            return stores[-1]

        yield new
        for store in stores:
            store.close()

    @pytest.fixture
    def store(self, new_store: NewStore) -> TodoStore:
        return new_store()

    def test_an_empty_store_is_reachable_and_at_position_zero(self, store: TodoStore) -> None:
        assert store.check_reachable() is True
        assert store.head_position() == 0
        assert PublicEventReader(store).read(0, 100) == []

    def test_the_head_is_the_position_of_the_last_event_recorded(self, store: TodoStore) -> None:
        user = store.register_user("head@example.com", "hash")
        task = store.create_task(user.aggregate.id, "a task")

        assert task.position is not None and user.position is not None
        assert store.head_position() == task.position > user.position

    def test_an_email_is_registered_once(self, store: TodoStore) -> None:
        store.register_user("once@example.com", "hash")
        with pytest.raises(EmailAlreadyRegisteredError):
            store.register_user("once@example.com", "other hash")

    def test_a_batch_of_digests_records_only_those_not_recorded_yet(self, store: TodoStore) -> None:
        day = date(2026, 12, 3)
        users = [store.register_user(f"d{n}@example.com", "hash").aggregate for n in range(4)]
        requests = [DigestDetails(u.id, u.email, 2, 1, ["a"]) for u in users]
        first = store.request_daily_digest(
            day, DigestDetails(users[1].id, users[1].email, 1, 0, ["x"])
        )
        assert first is not None

        saved = store.request_daily_digests(day, requests)

        assert [s is None for s in saved] == [False, True, False, False]
        assert [s.aggregate.id for s in saved if s is not None] == [
            digest_id_for(users[n].id, day) for n in (0, 2, 3)
        ]
        assert store.request_daily_digests(day, requests) == [None] * 4

    def test_the_digest_preference_is_the_latest_changes_alone(self, store: TodoStore) -> None:
        user = store.register_user("pref@example.com", "h").aggregate.id
        assert store.digest_enabled(user) is True, "on by default (no preferences event yet)"
        store.change_preferences(user, timezone="Asia/Kathmandu")
        assert store.digest_enabled(user) is True
        store.change_preferences(user, digest_enabled=False)
        assert store.digest_enabled(user) is False
        store.change_preferences(user, timezone="UTC")
        assert store.digest_enabled(user) is False, "a later change keeps the choice"
        store.change_preferences(user, digest_enabled=True)
        assert store.digest_enabled(user) is True
        assert store.digest_enabled(uuid4()) is True, "unknown to the store: sent, as before"

    @pytest.fixture
    def busy_store(self, store: TodoStore) -> TodoStore:
        record_every_event_type(store)
        return store

    def test_the_reader_gives_exactly_the_relays_public_events_in_store_order(
        self, busy_store: TodoStore
    ) -> None:
        store, head = busy_store, busy_store.head_position()
        reader = PublicEventReader(store)

        events = reader.read(0, head)

        assert events == relayed(store, 0, head)
        # Built trusted (no validation) from the store, the events still serialise as the relay's.
        assert [encode_event(e) for e in events] == [
            encode_event(e)  # type: ignore[arg-type]
            for e in relayed(store, 0, head)
        ]
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
        self, busy_store: TodoStore
    ) -> None:
        reader, head = PublicEventReader(busy_store), busy_store.head_position()
        everything = reader.read(0, head)

        shards = [reader.read(0, head, Shard(i, 3)) for i in range(3)]

        assert sorted((e for s in shards for e in s), key=lambda e: e.position) == everything
        for shard in shards:
            assert [e.position for e in shard] == sorted(e.position for e in shard)
        owners = [{aggregate_of(e) for e in shard} for shard in shards]
        assert all(a.isdisjoint(b) for i, a in enumerate(owners) for b in owners[i + 1 :])
        assert all(Shard(i, 3).holds(a) for i, shard in enumerate(owners) for a in shard)

    def test_a_store_with_compressed_state_is_read_through_the_mappers_general_path(
        self, new_store: NewStore
    ) -> None:
        store = new_store(COMPRESSOR_TOPIC="eventsourcing.compressor:ZlibCompressor")
        record_every_event_type(store)
        head = store.head_position()

        events = PublicEventReader(store).read(0, head)

        assert len(events) == 6 * 7
        assert events == relayed(store, 0, head)
