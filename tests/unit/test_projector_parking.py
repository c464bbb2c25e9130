"""Parking in the consumer loop, with fake ports: the later events of a poisoned aggregate are
parked behind it, in order, across batches, while other aggregates flow; a redelivered batch
parks and applies nothing twice."""

from __future__ import annotations

from uuid import uuid4

from contracts.events import PublicEvent
from projector.handlers import ProjectionError
from tests.support.consumer_fakes import FakeSource, fake_messages, projector_on_fakes
from tests.support.events import History


def test_later_events_of_a_poisoned_task_are_parked_behind_it_in_order_and_others_flow() -> None:
    h, user, poisoned, other = History(), uuid4(), uuid4(), uuid4()
    events: list[PublicEvent] = [
        *h.user_with_task(user, poisoned, "refused"),
        h.create(user, other, "fine"),
        h.rename(user, poisoned, "renamed"),
        h.complete(user, other),
        h.complete(user, poisoned),
    ]
    source = FakeSource(fake_messages(events))
    projector, projection, dead = projector_on_fakes(source)
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
    source = FakeSource(fake_messages([first]))
    projector, projection, _ = projector_on_fakes(source)
    projection.refuse = lambda e: ProjectionError("no") if e == first else None
    projector.step()
    source.messages = fake_messages([later], start=1)
    projector.step()
    assert sorted(projection.parked) == [("events", 0, 0), ("events", 0, 1)]
    assert projection.rows.tasks == {}


def test_a_batch_redelivered_after_a_crash_parks_nothing_twice_and_applies_nothing_twice() -> None:
    h, user, task = History(), uuid4(), uuid4()
    events: list[PublicEvent] = [
        *h.user_with_task(user, task, "refused"),
        h.rename(user, task, "later"),
    ]
    source = FakeSource(fake_messages(events))
    projector, projection, dead = projector_on_fakes(source)
    projection.refuse = lambda e: (
        ProjectionError("no") if getattr(e, "title", "") == "refused" else None
    )
    projector.step()
    first = dict(projection.parked)
    source.messages = fake_messages(events)  # the same offsets again: the Kafka commit was lost
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
