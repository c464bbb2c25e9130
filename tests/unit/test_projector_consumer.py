"""The consumer loop with fake ports: offsets follow durable effects, bad messages never stall."""

from __future__ import annotations

import threading
from uuid import uuid4

import psycopg
import pytest

from common.events import PublicEvent, TaskCreated, encode_event
from common.poison import Backoff
from projector.consumer import Projector, StopRequestedError
from projector.handlers import ProjectionError
from projector.main import build_projector
from projector.settings import ProjectorSettings
from tests.support.read_side import FakeDeadLetters, FakeMessage, FakeSource, InMemoryProjection
from tests.unit.test_projector_handlers import History


def messages(events: list[PublicEvent], partition: int = 0, start: int = 0) -> list[FakeMessage]:
    return [
        FakeMessage(encode_event(e), start + i, partition, _key=str(e.user_id).encode())
        for i, e in enumerate(events)
    ]


def make(
    source: FakeSource, batch_size: int = 100
) -> tuple[Projector, InMemoryProjection, FakeDeadLetters]:
    projection, dead = InMemoryProjection(), FakeDeadLetters()
    projector = Projector(
        source, projection, dead, batch_size=batch_size, backoff=Backoff(0.001, 0.01)
    )
    return projector, projection, dead


def some_events(n_tasks: int = 3) -> list[PublicEvent]:
    h, user = History(), uuid4()
    return [h.register(user), *(h.create(user, uuid4(), f"task {i}") for i in range(n_tasks))]


def test_a_batch_is_applied_and_then_its_next_offsets_are_committed() -> None:
    source = FakeSource(messages(some_events(3)))
    projector, projection, dead = make(source)
    assert projector.step() == 4
    assert len(projection.rows.tasks) == 3
    assert source.commits == [{("events", 0): 4}]
    assert dead.sent == []


def test_offsets_are_committed_per_partition() -> None:
    source = FakeSource(messages(some_events(1), 0) + messages(some_events(2), 2, start=10))
    projector, _, _ = make(source)
    projector.step()
    assert source.committed == {("events", 0): 2, ("events", 2): 13}


def test_a_garbage_message_is_dead_lettered_with_a_reason_and_later_events_are_applied() -> None:
    events = some_events(2)
    source = FakeSource(messages(events[:1]))
    source.messages.append(FakeMessage(b"\x00not json", 1, _key=b"k"))
    source.messages += messages(events[1:], start=2)
    projector, projection, dead = make(source)
    projector.step()
    assert [(d.offset, d.value, d.key) for d in dead.sent] == [(1, b"\x00not json", b"k")]
    assert dead.sent[0].reason.startswith("undecodable")
    assert len(projection.rows.tasks) == 2
    assert source.committed == {("events", 0): 4}


def test_a_message_that_is_valid_json_but_not_a_public_event_is_dead_lettered() -> None:
    source = FakeSource([FakeMessage(b'{"type": "task.created", "title": 3}', 0)])
    projector, _, dead = make(source)
    projector.step()
    assert len(dead.sent) == 1 and "undecodable" in dead.sent[0].reason


def test_an_empty_message_is_dead_lettered() -> None:
    source = FakeSource([FakeMessage(None, 0)])
    projector, _, dead = make(source)
    projector.step()
    assert len(dead.sent) == 1


def test_an_event_the_database_refuses_is_dead_lettered_alone_and_its_batch_applied() -> None:
    events = some_events(3)
    poison = events[2]
    assert isinstance(poison, TaskCreated)
    source = FakeSource(messages(events))
    projector, projection, dead = make(source)
    projection.refuse = lambda e: (
        psycopg.DataError("NUL character not permitted") if e == poison else None
    )
    projector.step()
    assert [d.offset for d in dead.sent] == [2]
    assert "DataError" in dead.sent[0].reason
    assert set(projection.rows.tasks) == {e.task_id for e in events[1:] if e != poison}  # type: ignore[union-attr]
    assert source.committed == {("events", 0): 4}


def test_an_event_the_handlers_cannot_apply_is_dead_lettered() -> None:
    source = FakeSource(messages(some_events(1)))
    projector, projection, dead = make(source)
    projection.refuse = lambda e: ProjectionError("contradicts the read model")
    projector.step()
    assert len(dead.sent) == 2
    assert all("ProjectionError" in d.reason for d in dead.sent)


def test_a_transient_database_error_is_retried_without_dead_letters_and_without_losing_events() -> (
    None
):
    source = FakeSource(messages(some_events(2)))
    projector, projection, dead = make(source)
    projection.fail_with = [psycopg.OperationalError("connection lost")] * 3
    projector.step()
    assert projection.calls == 4
    assert dead.sent == []
    assert len(projection.rows.tasks) == 2
    assert source.committed == {("events", 0): 3}


def test_offsets_are_not_committed_when_stopped_while_the_database_is_down() -> None:
    source = FakeSource(messages(some_events(1)))
    projector, projection, _ = make(source)
    projection.fail_with = [psycopg.OperationalError("down")] * 1000
    threading.Timer(0.05, projector.stop).start()
    with pytest.raises(StopRequestedError):
        projector.step()
    assert source.commits == []


def test_offsets_wait_until_the_dead_letters_are_durably_sent() -> None:
    source = FakeSource([FakeMessage(b"garbage", 0)])
    projector, _, dead = make(source)
    dead.fail_times = 2
    projector.step()
    assert len(dead.sent) == 1
    assert source.committed == {("events", 0): 1}


def test_redelivered_messages_are_committed_again_but_change_nothing() -> None:
    events = some_events(2)
    source = FakeSource(messages(events))
    projector, projection, _ = make(source)
    projector.step()
    before = projection.rows.tasks.copy()
    source.messages = messages(events, start=3)
    projector.step()
    assert projection.rows.tasks == before
    assert projector.counters.duplicates == 3


def test_run_returns_once_stopped() -> None:
    source = FakeSource(messages(some_events(2)))
    projector, projection, _ = make(source, batch_size=1)
    thread = threading.Thread(target=projector.run)
    thread.start()
    threading.Timer(0.05, projector.stop).start()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(projection.rows.tasks) == 2


def test_the_composition_root_wires_injected_adapters() -> None:
    source, projection, dead = (
        FakeSource(messages(some_events(1))),
        InMemoryProjection(),
        FakeDeadLetters(),
    )
    from common.settings import DatabaseSettings, KafkaSettings

    projector = build_projector(
        DatabaseSettings(),
        KafkaSettings(),
        ProjectorSettings(PROJECTOR_BATCH_SIZE=1),
        source=source,
        projection=projection,
        dead_letters=dead,
    )
    assert projector.step() == 1
    assert len(projection.rows.users) == 1
