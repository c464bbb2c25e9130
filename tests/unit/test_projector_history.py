"""Restore and the task history: what the handlers record for GET /tasks/{id}/history and
GET /activity, once per event however often it is delivered."""

from __future__ import annotations

from uuid import uuid4

from contracts.events import PublicEvent
from projector.handlers import Outcome, apply_event
from tests.support.events import History
from tests.unit.test_projector_handlers import applied


def test_a_restored_task_is_no_longer_deleted_and_keeps_its_state() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created, completed = h.create(user, task, "milk"), h.complete(user, task)
    rows = applied(created, completed, h.delete(user, task))
    restored = h.restore(user, task)
    assert apply_event(rows, restored) is Outcome.APPLIED
    row = rows.tasks[task]
    assert (row.deleted, row.title, row.done, row.done_at) == (
        False,
        "milk",
        True,
        completed.done_at,
    )
    assert (row.created_at, row.version, row.position) == (
        created.occurred_at,
        4,
        restored.position,
    )


def test_a_late_redelivered_delete_does_not_delete_a_restored_task_again() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created, deleted = h.create(user, task), h.delete(user, task)
    rows = applied(created, deleted, h.restore(user, task))
    assert apply_event(rows, deleted) is Outcome.DUPLICATE
    assert (rows.tasks[task].deleted, rows.tasks[task].version) == (False, 3)


def test_every_applied_task_event_is_recorded_with_what_it_changed() -> None:
    h, user, task = History(), uuid4(), uuid4()
    events: list[PublicEvent] = [
        *h.user_with_task(user, task, "draft"),
        h.rename(user, task, "final"),
        h.complete(user, task),
        h.reopen(user, task),
        h.delete(user, task),
        h.restore(user, task),
        h.digest(user),
    ]
    rows = applied(*events)
    recorded = [(r.type, r.position, r.version, r.changes) for r in rows.task_events]
    completed_at = events[3].occurred_at.isoformat()
    assert recorded == [
        ("task.created", 2, 1, {"title": "draft"}),
        ("task.renamed", 3, 2, {"title": "final"}),
        ("task.completed", 4, 3, {"done_at": completed_at}),
        ("task.reopened", 5, 4, {}),
        ("task.deleted", 6, 5, {}),
        ("task.restored", 7, 6, {}),
    ]
    assert {(r.user_id, r.task_id) for r in rows.task_events} == {(user, task)}
    assert [r.occurred_at for r in rows.task_events] == [e.occurred_at for e in events[1:7]]


def test_a_redelivered_or_skipped_event_adds_nothing_to_the_history() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created = h.create(user, task)
    h.rename(user, task, "lost on the way")
    gap = h.rename(user, task, "after a gap")
    rows = applied(created)
    assert apply_event(rows, created) is Outcome.DUPLICATE
    assert apply_event(rows, gap) is Outcome.GAP
    assert [r.type for r in rows.task_events] == ["task.created"]


def test_clearing_a_batchs_changes_forgets_the_history_rows_already_written() -> None:
    h, user, task = History(), uuid4(), uuid4()
    rows = applied(h.create(user, task))
    rows.clear_changes()
    apply_event(rows, h.rename(user, task, "next"))
    assert [r.type for r in rows.task_events] == ["task.renamed"]
