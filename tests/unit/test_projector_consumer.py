"""The consumer loop with fake ports: offsets follow durable effects, bad messages never stall."""

from __future__ import annotations

import threading
from uuid import uuid4

import psycopg
import pytest

from consuming.loop import StopRequestedError
from contracts.events import PublicEvent, TaskCreated
from projector.bootstrap import build_projector
from projector.handlers import ProjectionError
from projector.settings import ProjectorSettings
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.consumer_fakes import (
    FakeDeadLetters,
    FakeMessage,
    FakeSource,
    InMemoryProjection,
    fake_messages,
    projector_on_fakes,
)
from tests.support.events import History
from tests.support.read_side import wait_until


def some_events(n_tasks: int = 3) -> list[PublicEvent]:
    h, user = History(), uuid4()
    return [h.register(user), *(h.create(user, uuid4(), f"task {i}") for i in range(n_tasks))]


def test_a_batch_is_applied_and_then_its_next_offsets_are_committed() -> None:
    source = FakeSource(fake_messages(some_events(3)))
    projector, projection, dead = projector_on_fakes(source)
    assert projector.step() == 4
    assert len(projection.rows.tasks) == 3
    assert source.commits == [{("events", 0): 4}]
    assert dead.sent == []


def test_offsets_are_committed_per_partition() -> None:
    source = FakeSource(
        fake_messages(some_events(1), 0) + fake_messages(some_events(2), 2, start=10)
    )
    projector, _, _ = projector_on_fakes(source)
    projector.step()
    assert source.committed == {("events", 0): 2, ("events", 2): 13}


def test_a_garbage_message_is_dead_lettered_with_a_reason_and_later_events_are_applied() -> None:
    events = some_events(2)
    source = FakeSource(fake_messages(events[:1]))
    source.messages.append(FakeMessage(b"\x00not json", 1, _key=b"k"))
    source.messages += fake_messages(events[1:], start=2)
    projector, projection, dead = projector_on_fakes(source)
    projector.step()
    assert [(d.offset, d.value, d.key) for d in dead.sent] == [(1, b"\x00not json", b"k")]
    assert dead.sent[0].reason.startswith("undecodable")
    assert len(projection.rows.tasks) == 2
    assert source.committed == {("events", 0): 4}


def test_a_message_that_is_valid_json_but_not_a_public_event_is_dead_lettered() -> None:
    source = FakeSource([FakeMessage(b'{"type": "task.created", "title": 3}', 0)])
    projector, _, dead = projector_on_fakes(source)
    projector.step()
    assert len(dead.sent) == 1 and "undecodable" in dead.sent[0].reason


def test_an_empty_message_is_dead_lettered() -> None:
    source = FakeSource([FakeMessage(None, 0)])
    projector, _, dead = projector_on_fakes(source)
    projector.step()
    assert len(dead.sent) == 1


def test_an_event_the_database_refuses_is_dead_lettered_alone_and_its_batch_applied() -> None:
    events = some_events(3)
    poison = events[2]
    assert isinstance(poison, TaskCreated)
    source = FakeSource(fake_messages(events))
    projector, projection, dead = projector_on_fakes(source)
    projection.refuse = lambda e: (
        psycopg.DataError("NUL character not permitted") if e == poison else None
    )
    projector.step()
    assert [d.offset for d in dead.sent] == [2]
    assert "DataError" in dead.sent[0].reason
    assert set(projection.rows.tasks) == {e.task_id for e in events[1:] if e != poison}  # type: ignore[union-attr]
    assert source.committed == {("events", 0): 4}


def test_an_event_the_handlers_cannot_apply_is_dead_lettered() -> None:
    source = FakeSource(fake_messages(some_events(1)))
    projector, projection, dead = projector_on_fakes(source)
    projection.refuse = lambda e: ProjectionError("contradicts the read model")
    projector.step()
    assert len(dead.sent) == 2
    assert all("ProjectionError" in d.reason for d in dead.sent)


def test_a_transient_database_error_is_retried_without_dead_letters_and_without_losing_events() -> (
    None
):
    source = FakeSource(fake_messages(some_events(2)))
    projector, projection, dead = projector_on_fakes(source)
    projection.fail_with = [psycopg.OperationalError("connection lost")] * 3
    projector.step()
    assert projection.calls == 4
    assert dead.sent == []
    assert len(projection.rows.tasks) == 2
    assert source.committed == {("events", 0): 3}


def test_offsets_are_not_committed_when_stopped_while_the_database_is_down() -> None:
    source = FakeSource(fake_messages(some_events(1)))
    projector, projection, _ = projector_on_fakes(source)
    projection.fail_with = [psycopg.OperationalError("down")] * 1000
    threading.Timer(0.05, projector.stop).start()
    with pytest.raises(StopRequestedError):
        projector.step()
    assert source.commits == []


def test_offsets_wait_until_the_dead_letters_are_durably_sent() -> None:
    source = FakeSource([FakeMessage(b"garbage", 0)])
    projector, _, dead = projector_on_fakes(source)
    dead.fail_times = 2
    projector.step()
    assert len(dead.sent) == 1
    assert source.committed == {("events", 0): 1}


def test_redelivered_messages_are_committed_again_but_change_nothing() -> None:
    events = some_events(2)
    source = FakeSource(fake_messages(events))
    projector, projection, _ = projector_on_fakes(source)
    projector.step()
    before = projection.rows.tasks.copy()
    source.messages = fake_messages(events, start=3)
    projector.step()
    assert projection.rows.tasks == before
    assert projector.counters.duplicates == 3


def test_run_returns_once_stopped() -> None:
    source = FakeSource(fake_messages(some_events(2)))
    projector, projection, _ = projector_on_fakes(source, batch_size=1)
    thread = threading.Thread(target=projector.run)
    thread.start()
    threading.Timer(0.05, projector.stop).start()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(projection.rows.tasks) == 2


def test_the_composition_root_wires_injected_adapters() -> None:
    source, projection, dead = (
        FakeSource(fake_messages(some_events(1))),
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


class HandlerBugError(Exception):
    pass


def test_a_bug_is_retried_a_bounded_number_of_times_then_the_projector_halts_not_ready() -> None:
    from runtime.health import Readiness, serve_health
    from tests.unit.test_health import free_port, get

    source = FakeSource(fake_messages(some_events(1)))
    projector, projection, dead = projector_on_fakes(source, bug_retries=3)
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
