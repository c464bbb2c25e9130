"""The consumer loop with fake ports: offsets follow durable effects, bad messages never stall."""

from __future__ import annotations

import threading
from uuid import uuid4

import psycopg
import pytest

from consuming.loop import ConsumerLoop, StopRequestedError
from contracts.events import PublicEvent, TaskCreated, encode_event
from projector.bootstrap import build_projector
from projector.handlers import ProjectionError
from projector.settings import ProjectorSettings
from runtime.settings import ConsumerSettings, DatabaseSettings, KafkaSettings
from tests.support.events import History
from tests.support.read_side import (
    FakeDeadLetters,
    FakeMessage,
    FakeSource,
    InMemoryProjection,
    wait_until,
)


def messages(events: list[PublicEvent], partition: int = 0, start: int = 0) -> list[FakeMessage]:
    return [
        FakeMessage(encode_event(e), start + i, partition, _key=str(e.user_id).encode())
        for i, e in enumerate(events)
    ]


def quick_retries(bug_retries: int = 5) -> ConsumerSettings:
    return ConsumerSettings(
        CONSUMER_RETRY_INITIAL_SECONDS=0.001,
        CONSUMER_RETRY_MAX_SECONDS=0.01,
        CONSUMER_BUG_RETRIES=bug_retries,
    )


def make(
    source: FakeSource, batch_size: int = 100, bug_retries: int = 5
) -> tuple[ConsumerLoop, InMemoryProjection, FakeDeadLetters]:
    """The projector as its composition root builds it, on fake ports."""
    projection, dead = InMemoryProjection(), FakeDeadLetters()
    projector = build_projector(
        DatabaseSettings(),
        KafkaSettings(),
        ProjectorSettings(PROJECTOR_BATCH_SIZE=batch_size),
        source=source,
        projection=projection,
        dead_letters=dead,
        policy=quick_retries(bug_retries),
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


def test_later_events_of_a_poisoned_task_are_parked_behind_it_in_order_and_others_flow() -> None:
    h, user, poisoned, other = History(), uuid4(), uuid4(), uuid4()
    events: list[PublicEvent] = [
        *h.user_with_task(user, poisoned, "refused"),
        h.create(user, other, "fine"),
        h.rename(user, poisoned, "renamed"),
        h.complete(user, other),
        h.complete(user, poisoned),
    ]
    source = FakeSource(messages(events))
    projector, projection, dead = make(source)
    projection.refuse = lambda e: (
        ProjectionError("refused") if getattr(e, "title", "") == "refused" else None
    )
    projector.step()
    parked = sorted(projection.parked.values(), key=lambda d: d.offset)
    assert [(d.offset, d.kind.value, d.aggregate_id) for d in parked] == [
        (1, "poison", str(poisoned)),
        (3, "parked", str(poisoned)),
        (5, "parked", str(poisoned)),
    ]
    assert "behind events/0/1" in parked[1].reason
    assert [d.offset for d in dead.sent] == [1, 3, 5], "every parked message on events.dlq"
    assert set(projection.rows.tasks) == {other} and projection.rows.tasks[other].done
    assert projection.rows.gaps == 0, "parked, not skipped as gaps"
    assert source.committed == {("events", 0): 6}


def test_a_task_parked_in_an_earlier_batch_keeps_parking_its_new_events() -> None:
    h, user, task = History(), uuid4(), uuid4()
    first, later = h.create(user, task, "refused"), h.rename(user, task, "later")
    source = FakeSource(messages([first]))
    projector, projection, _ = make(source)
    projection.refuse = lambda e: ProjectionError("no") if e == first else None
    projector.step()
    source.messages = messages([later], start=1)
    projector.step()
    assert sorted(projection.parked) == [("events", 0, 0), ("events", 0, 1)]
    assert projection.rows.tasks == {}


class HandlerBugError(Exception):
    pass


def test_a_bug_is_retried_a_bounded_number_of_times_then_the_projector_halts_not_ready() -> None:
    from runtime.health import Readiness, serve_health
    from tests.unit.test_health import free_port, get

    source = FakeSource(messages(some_events(1)))
    projector, projection, dead = make(source, bug_retries=3)
    projection.fail_with = [HandlerBugError("a bug in a handler")] * 100
    port = free_port()
    server = serve_health("127.0.0.1", port, projector.heartbeat.readiness, "test")
    assert server is not None
    thread = threading.Thread(target=projector.run)
    try:
        assert get(port, "/ready")[0] == 200
        thread.start()
        wait_until(lambda: projector.heartbeat.halted is not None, 10, "the projector to halt")
        status, body = get(port, "/ready")
        assert status == 503 and body["status"] == "unavailable"
        assert (
            "failed 4 time(s)" in body["reason"]
            and "HandlerBugError: a bug in a handler" in body["reason"]
        )
        assert projection.calls == 4, "the first try and 3 retries, then no more"
        assert thread.is_alive(), "halted, not dead: it stays up to report why"
        assert source.commits == [] and dead.sent == [], "nothing committed, nothing dead-lettered"
        assert source.closed, "its partitions go back to the group"
        assert projector.heartbeat.readiness() == Readiness(False, body["reason"])
    finally:
        projector.stop()
        thread.join(timeout=5)
        server.shutdown()
    assert not thread.is_alive()


def test_a_batch_redelivered_after_a_crash_parks_nothing_twice_and_applies_nothing_twice() -> None:
    h, user, task = History(), uuid4(), uuid4()
    events: list[PublicEvent] = [
        *h.user_with_task(user, task, "refused"),
        h.rename(user, task, "later"),
    ]
    source = FakeSource(messages(events))
    projector, projection, dead = make(source)
    projection.refuse = lambda e: (
        ProjectionError("no") if getattr(e, "title", "") == "refused" else None
    )
    projector.step()
    first = dict(projection.parked)
    source.messages = messages(events)  # the same offsets again: the Kafka commit was lost
    projector.step()
    assert projection.parked == first, "the first parking (kind, reason, time) is kept"
    assert [d.kind.value for d in dead.sent] == ["poison", "parked"] * 2, (
        "events.dlq: at least once"
    )
    assert len(projection.rows.users) == 1 and projector.counters.duplicates == 1


def test_a_redelivered_event_from_before_the_parked_one_is_not_held_back() -> None:
    from consuming.parking import Blockers

    held = Blockers({"task": [("events", 0, 5)]})
    assert held.head("task", ("events", 0, 3)) is None, "applied before the poison: a duplicate"
    assert held.head("task", ("events", 0, 5)) == ("events", 0, 5), "the poison itself"
    assert held.head("task", ("events", 0, 9)) == ("events", 0, 5)
    assert held.head("task", ("events", 1, 0)) == ("events", 0, 5), "another partition: wait"
    assert held.head("other", ("events", 0, 9)) is None
    assert held.head(None, ("events", 0, 9)) is None
