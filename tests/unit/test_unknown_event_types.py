"""Forward compatibility: an event type a consumer does not know (a newer producer's, like
task.restored was to the consumers before it) is skipped by the projector and the mailer, never
dead-lettered: parking it would hold back its aggregate's later events for nothing."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from consuming.poison import Kind, classify
from contracts.events import UnknownEventTypeError, decode_event, encode_event
from tests.support.consumer_fakes import FakeMessage, FakeSource, fake_messages, projector_on_fakes
from tests.support.events import History
from tests.support.mailer_fakes import TOPIC, mailer, process


def future_event(task_id: str, **fields: object) -> bytes:
    """A well-formed envelope of a type this code has never heard of."""
    return json.dumps(
        {"type": "task.archived", "task_id": task_id, "user_id": str(uuid4()), **fields}
    ).encode()


def test_an_unknown_type_is_told_apart_from_a_broken_message_of_a_known_type() -> None:
    with pytest.raises(UnknownEventTypeError) as unknown:
        decode_event(future_event(str(uuid4()), position=1))
    assert unknown.value.event_type == "task.archived"
    # still poison for whoever must understand every message (no consumer of ours)
    assert classify(unknown.value) is Kind.POISON


def test_the_projector_skips_an_unknown_type_and_applies_the_aggregates_later_events() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created, renamed = h.create(user, task, "v1"), h.rename(user, task, "v2")
    source = FakeSource(fake_messages([created]))
    source.messages.append(FakeMessage(future_event(str(task)), 1, _key=str(user).encode()))
    source.messages += fake_messages([renamed], start=2)
    projector, projection, dead = projector_on_fakes(source)

    assert projector.step() == 3

    assert dead.sent == []
    assert projection.parked == {}
    assert (projection.rows.tasks[task].title, projection.rows.tasks[task].version) == ("v2", 2)
    assert source.committed == {("events", 0): 3}
    assert projector.counters.skipped == 1


def test_a_batch_of_unknown_types_only_is_committed_with_nothing_applied_or_parked() -> None:
    source = FakeSource([FakeMessage(future_event(str(uuid4())), i) for i in range(3)])
    projector, projection, dead = projector_on_fakes(source)

    assert projector.step() == 3

    assert (dead.sent, projection.parked, projection.rows.tasks) == ([], {}, {})
    assert source.committed == {("events", 0): 3}
    assert projector.counters.skipped == 3


def test_the_mailer_ignores_an_unknown_type_with_or_without_a_type_header() -> None:
    instance, sender, processed, letters = mailer()
    raw = future_event(str(uuid4()))
    batch = [
        FakeMessage(raw, 0, 0, TOPIC, b"key", [("type", b"task.archived")]),
        FakeMessage(raw, 1, 0, TOPIC, b"key", []),
    ]

    result = process(instance, batch)

    assert sender.attempts == [] and processed.ids == set() and letters.letters == []
    assert (result.ignored, result.commit) == (2, {(TOPIC, 0): 2})


def test_a_restored_event_is_known_to_both_consumers_contract() -> None:
    h, user, task = History(), uuid4(), uuid4()
    h.create(user, task)
    h.delete(user, task)
    restored = h.restore(user, task)
    assert decode_event(encode_event(restored)) == restored
