"""The two ways a stored event becomes a public one: validated (the relay) and trusted (the
rebuild's bulk read, contracts.events.trusted) build the same event, down to its JSON."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from uuid import uuid4, uuid5

import pytest

import contracts.events
from contracts.events import (
    EVENT_ID_NAMESPACE,
    PublicEvent,
    TaskCreated,
    encode_event,
    public_event_id,
    trusted,
)
from event_store.application import DigestDetails, TodoStore
from event_store.public import PUBLIC_TOPICS, public_event_of
from tests.support.events import envelope_fields


@pytest.fixture
def store() -> Iterator[TodoStore]:
    store = TodoStore(env={})  # eventsourcing's in-memory recorder
    yield store
    store.close()


def every_public_event_type(store: TodoStore) -> None:
    user = store.register_user("both@example.com", "hash").aggregate
    store.change_preferences(user.id, timezone="Asia/Kathmandu", digest_enabled=False)
    task = store.create_task(user.id, "a t\u00eetle \u2603").aggregate
    store.update_task(user.id, task.id, title="renamed")
    store.update_task(user.id, task.id, done=True)
    store.update_task(user.id, task.id, done=False)
    store.delete_task(user.id, task.id)
    store.restore_task(user.id, task.id)
    day = date(2026, 12, 3)
    store.request_daily_digest(day, DigestDetails(user.id, user.email, 3, 1, ["a", "b"]))


def translated(store: TodoStore, *, trusted: bool) -> list[PublicEvent | None]:
    notifications = store.recorder.select_notifications(0, 100, topics=PUBLIC_TOPICS)
    return [
        public_event_of(store.mapper.to_domain_event(n), n.id, trusted=trusted)
        for n in notifications
    ]


def test_trusted_and_validated_translations_build_the_same_event_of_every_type(
    store: TodoStore,
) -> None:
    every_public_event_type(store)

    validated = translated(store, trusted=False)
    fast = translated(store, trusted=True)

    assert len({type(e) for e in validated}) == 9, "every public event type"
    assert fast == validated
    assert [encode_event(e) for e in fast if e] == [encode_event(e) for e in validated if e]
    for a, b in zip(fast, validated, strict=True):
        assert a is not None and b is not None
        assert list(a.__dict__) == list(b.__dict__), "fields in declared order"
        assert a.model_fields_set == b.model_fields_set
        assert (a.__pydantic_extra__, a.__pydantic_private__) == (None, None)


def test_a_trusted_event_refuses_a_missing_or_an_unknown_field() -> None:
    values = {**envelope_fields(position=3), "task_id": uuid4(), "title": "t"}
    assert trusted(TaskCreated, values) == TaskCreated(**values)

    with pytest.raises(TypeError, match="TaskCreated"):
        trusted(TaskCreated, {k: v for k, v in values.items() if k != "title"})
    with pytest.raises(TypeError, match="TaskCreated"):
        trusted(TaskCreated, {**values, "colour": "red"})


def test_event_ids_stay_right_when_the_remembered_names_are_cleared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(contracts.events, "_NAME_PREFIXES", {})
    monkeypatch.setattr(contracts.events, "_NAME_PREFIXES_MAX", 4)
    aggregates = [uuid4() for _ in range(10)]

    ids = [public_event_id(a, v) for v in (1, 2) for a in aggregates]

    assert ids == [uuid5(EVENT_ID_NAMESPACE, f"{a}/{v}") for v in (1, 2) for a in aggregates]
    assert len(contracts.events._NAME_PREFIXES) <= 4
