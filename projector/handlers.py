"""How each public event changes the read model: one small, pure handler per event type.

Handlers work on `Rows`, an in-memory slice of the read model (the rows a batch touches, loaded
from the database first). The same handlers serve the live projector (rows loaded per Kafka batch)
and the rebuild (rows folded while replaying the store), so both build exactly the same tables.

Idempotency: every row keeps the aggregate `version` of the last event applied. An event is applied
only if it is the creation of an absent row, or exactly the next version of the row. Anything else
is a duplicate or an old event (skipped) or a gap (an earlier event is missing: skipped and
logged; `python -m projector rebuild` repairs it). An event refused for good (ProjectionError) is
parked by the live projector, and later events of its aggregate with it (no gaps from that).
The per-user position is recorded for every event, applied or not, as the greatest seen.

History: every task event applied also becomes a `TaskEventRow` (what it changed), inserted into
`task_events` keyed by its store position, so the history holds exactly the events the task row
went through, and a replay (live re-delivery or rebuild) never records one twice.

The row classes and `Rows` are in projector.rows (shaped by contracts.read_model's declaration).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from consuming.poison import PoisonError
from contracts.events import (
    DailyDigestRequested,
    PublicEvent,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskEvent,
    TaskRenamed,
    TaskReopened,
    TaskRestored,
    UserPreferencesChanged,
    UserRegistered,
)
from projector.rows import Rows, TaskRow, UserRow


class ProjectionError(PoisonError):
    """The event cannot be applied (it contradicts the read model): poison, so it is parked with
    its aggregate's later events (consuming.poison, consuming.parking)."""


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # already applied (re-delivery), or older than the row
    GAP = "gap"  # newer than the next version: an earlier event of the aggregate is missing


# --- handlers ----------------------------------------------------------------------------------


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing here keeps the live projector (dead letter) and the
    # rebuild (skipped, counted) in agreement instead of failing somewhere in the database.
    if "\x00" in text:
        raise ProjectionError("text contains a NUL character, which the read model cannot store")
    return text


def _creates(exists: bool, version: int) -> Outcome:
    """APPLIED if a creation event (version 1) finds no row yet (apply it), else DUPLICATE (the row
    is there) or GAP (an event after the creation came first)."""
    if exists:
        return Outcome.DUPLICATE
    return Outcome.APPLIED if version == 1 else Outcome.GAP


def on_user_registered(rows: Rows, e: UserRegistered) -> Outcome:
    if (order := _creates(e.user_id in rows.users, e.aggregate_version)) is not Outcome.APPLIED:
        return order
    rows.users[e.user_id] = UserRow(
        id=e.user_id,
        email=_storable(e.email),
        created_at=e.occurred_at,
        version=e.aggregate_version,
        position=e.position,
    )
    rows.changed_users.add(e.user_id)
    return Outcome.APPLIED


def _in_order(row: UserRow | TaskRow | None, version: int) -> Outcome:
    """APPLIED if an event of this aggregate version is the row's next one (apply it), else why
    not: no row yet or a version skipped (GAP), or already applied (DUPLICATE)."""
    if row is None:
        return Outcome.GAP
    if version <= row.version:
        return Outcome.DUPLICATE
    return Outcome.APPLIED if version == row.version + 1 else Outcome.GAP


def on_user_preferences_changed(rows: Rows, e: UserPreferencesChanged) -> Outcome:
    user = rows.users.get(e.user_id)
    if (order := _in_order(user, e.aggregate_version)) is not Outcome.APPLIED:
        return order
    assert user is not None  # _in_order checked it
    user.timezone = _storable(e.timezone)
    user.digest_enabled = e.digest_enabled
    user.version = e.aggregate_version
    user.position = e.position
    rows.changed_users.add(user.id)
    return Outcome.APPLIED


def on_task_created(rows: Rows, e: TaskCreated) -> Outcome:
    if (order := _creates(e.task_id in rows.tasks, e.aggregate_version)) is not Outcome.APPLIED:
        return order
    rows.tasks[e.task_id] = TaskRow(
        id=e.task_id,
        user_id=e.user_id,
        title=_storable(e.title),
        done=False,
        created_at=e.occurred_at,
        done_at=None,
        version=e.aggregate_version,
        deleted=False,
        position=e.position,
    )
    rows.changed_tasks.add(e.task_id)
    rows.record(e, {"title": e.title})
    return Outcome.APPLIED


def on_task_renamed(rows: Rows, e: TaskRenamed) -> Outcome:
    title = _storable(e.title)
    task, order = _task_in_order(rows, e)
    if task is None:
        return order
    task.title = title
    _changed(rows, task, e, {"title": title})
    return order


def on_task_completed(rows: Rows, e: TaskCompleted) -> Outcome:
    return _mark_done(rows, e, e.done_at)


def on_task_reopened(rows: Rows, e: TaskReopened) -> Outcome:
    return _mark_done(rows, e, None)


def on_task_deleted(rows: Rows, e: TaskDeleted) -> Outcome:
    return _mark_deleted(rows, e, deleted=True)


def on_task_restored(rows: Rows, e: TaskRestored) -> Outcome:
    return _mark_deleted(rows, e, deleted=False)


def on_digest_requested(rows: Rows, e: DailyDigestRequested) -> Outcome:
    return Outcome.APPLIED  # not part of the read model; only the user's position moves


def _mark_done(rows: Rows, e: TaskCompleted | TaskReopened, done_at: datetime | None) -> Outcome:
    """Completed (done_at set) or reopened (None); the history keeps when it was done."""
    task, order = _task_in_order(rows, e)
    if task is not None:
        task.done = done_at is not None
        task.done_at = done_at
        _changed(rows, task, e, {} if done_at is None else {"done_at": done_at.isoformat()})
    return order


def _mark_deleted(rows: Rows, e: TaskDeleted | TaskRestored, *, deleted: bool) -> Outcome:
    task, order = _task_in_order(rows, e)
    if task is not None:
        task.deleted = deleted
        _changed(rows, task, e, {})
    return order


def _task_in_order(rows: Rows, e: TaskEvent) -> tuple[TaskRow | None, Outcome]:
    """(the task, APPLIED) if the event is its next one, else (None, why not). The handlers
    change the row themselves (no closure per event: the rebuild applies a million)."""
    task = rows.tasks.get(e.task_id)
    if (order := _in_order(task, e.aggregate_version)) is not Outcome.APPLIED:
        return None, order
    assert task is not None  # _in_order checked it
    if e.user_id != task.user_id:
        raise ProjectionError(f"task {e.task_id} belongs to another user than the event's")
    return task, order


def _changed(rows: Rows, task: TaskRow, e: TaskEvent, changes: dict[str, Any]) -> None:
    """After a handler changed the task: its version, position, and the history row."""
    task.version = e.aggregate_version
    task.position = e.position
    rows.changed_tasks.add(task.id)
    rows.record(e, changes)


Handler = Callable[[Rows, Any], Outcome]

HANDLERS: dict[type[Any], Handler] = {
    UserRegistered: on_user_registered,
    UserPreferencesChanged: on_user_preferences_changed,
    TaskCreated: on_task_created,
    TaskRenamed: on_task_renamed,
    TaskCompleted: on_task_completed,
    TaskReopened: on_task_reopened,
    TaskDeleted: on_task_deleted,
    TaskRestored: on_task_restored,
    DailyDigestRequested: on_digest_requested,
}


def apply_event(rows: Rows, event: PublicEvent) -> Outcome:
    """Apply one event to `rows` (in place). Raises ProjectionError if it cannot be applied."""
    handler = HANDLERS.get(type(event))
    if handler is None:
        raise ProjectionError(f"no handler for event type {event.type!r}")
    outcome = handler(rows, event)
    if outcome is Outcome.GAP:
        rows.gaps += 1
    elif outcome is Outcome.DUPLICATE:
        rows.duplicates += 1
    if event.position > rows.positions.get(event.user_id, 0):
        rows.positions[event.user_id] = event.position
    return outcome


def referenced_ids(events: Iterable[PublicEvent]) -> tuple[set[UUID], set[UUID]]:
    """(user ids, task ids) whose rows handlers of these events read."""
    user_ids: set[UUID] = set()
    task_ids: set[UUID] = set()
    for e in events:
        if isinstance(e, TaskEvent):
            task_ids.add(e.task_id)
        elif isinstance(e, UserRegistered | UserPreferencesChanged):
            user_ids.add(e.user_id)
    return user_ids, task_ids
