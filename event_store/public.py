"""Translation from stored domain events to the public contract (contracts.events).

The one place that decides what leaves the store: internal events (email claims) are not published
and the password hash is never copied. Used by the relay (to Kafka) and by the projector's rebuild
(replaying the store), so both see exactly the same events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from eventsourcing.persistence import Mapper, Notification
from pydantic import BaseModel

# The public classes are named through their module (contract.TaskCreated), so that a line of
# translation reads apart from the domain event it starts from (Task.Created).
from contracts import events as contract
from contracts.events import PublicEvent
from event_store.domain.model import DEFAULT_TIMEZONE, DailyDigest, Task, User


class Make(Protocol):
    """How a translator builds a public event from its class and field values: validated (the
    relay) or trusted (contracts.events.trusted: a bulk replay of the store, whose events were
    validated when they were recorded)."""

    def __call__[M: BaseModel](self, model: type[M], values: dict[str, Any], /) -> M: ...


def _validated[M: BaseModel](model: type[M], values: dict[str, Any]) -> M:
    return model(**values)


def _fields(event: Any, position: int, user_id: Any, **fields: Any) -> dict[str, Any]:
    """The envelope's fields and the type's own, in one dict (a rebuild builds a million)."""
    return {
        "event_id": contract.public_event_id(event.originator_id, event.originator_version),
        "occurred_at": event.timestamp,
        "user_id": user_id,
        "position": position,
        "aggregate_version": event.originator_version,
        **fields,
    }


def _user_registered(e: Any, pos: int, make: Make) -> PublicEvent:
    return make(contract.UserRegistered, _fields(e, pos, e.originator_id, email=e.email))


def _user_preferences_changed(e: Any, pos: int, make: Make) -> PublicEvent:
    fields = _fields(e, pos, e.originator_id, timezone=e.timezone, digest_enabled=e.digest_enabled)
    return make(contract.UserPreferencesChanged, fields)


def _task(
    model: type[contract.TaskEvent], e: Any, pos: int, make: Make, **fields: Any
) -> PublicEvent:
    return make(model, _fields(e, pos, e.user_id, task_id=e.originator_id, **fields))


def _task_created(e: Any, pos: int, make: Make) -> PublicEvent:
    return _task(contract.TaskCreated, e, pos, make, title=e.title)


def _task_renamed(e: Any, pos: int, make: Make) -> PublicEvent:
    return _task(contract.TaskRenamed, e, pos, make, title=e.title)


def _task_completed(e: Any, pos: int, make: Make) -> PublicEvent:
    return _task(contract.TaskCompleted, e, pos, make, done_at=e.done_at)


def _task_reopened(e: Any, pos: int, make: Make) -> PublicEvent:
    return _task(contract.TaskReopened, e, pos, make)


def _task_deleted(e: Any, pos: int, make: Make) -> PublicEvent:
    return _task(contract.TaskDeleted, e, pos, make)


def _task_restored(e: Any, pos: int, make: Make) -> PublicEvent:
    return _task(contract.TaskRestored, e, pos, make)


def _digest_requested(e: Any, pos: int, make: Make) -> PublicEvent:
    stats = make(
        contract.DigestStats, {"total": e.total, "done": e.done, "undone": e.total - e.done}
    )
    fields = _fields(
        e,
        pos,
        e.user_id,
        digest_id=e.originator_id,
        digest_date=e.digest_date,
        email=e.email,
        stats=stats,
        # A list of its own, as validation would copy it (never shared with the domain event).
        undone_titles=list(e.undone_titles),
        # Digests recorded before timezones were in UTC (their stored events lack the field).
        timezone=getattr(e, "timezone", DEFAULT_TIMEZONE),
    )
    return make(contract.DailyDigestRequested, fields)


_TRANSLATORS: dict[type, Callable[[Any, int, Make], PublicEvent]] = {
    User.Registered: _user_registered,
    User.PreferencesChanged: _user_preferences_changed,
    Task.Created: _task_created,
    Task.Renamed: _task_renamed,
    Task.Completed: _task_completed,
    Task.Reopened: _task_reopened,
    Task.Deleted: _task_deleted,
    Task.Restored: _task_restored,
    DailyDigest.Requested: _digest_requested,
}

# Topics of stored events that are published; the relay and rebuild filter on these in SQL.
PUBLIC_TOPICS: tuple[str, ...] = tuple(
    f"{cls.__module__}:{cls.__qualname__}" for cls in _TRANSLATORS
)


def to_public(mapper: Mapper[Any], notification: Notification) -> PublicEvent | None:
    """The public event for a stored notification, or None if it is internal."""
    return public_event_of(mapper.to_domain_event(notification), notification.id)


def public_event_of(event: Any, position: int, *, trusted: bool = False) -> PublicEvent | None:
    """The public event for an already mapped domain event, or None if it is internal. `trusted`:
    built without validation (contracts.events.trusted), for events read back from the store."""
    translate = _TRANSLATORS.get(type(event))
    if translate is None:
        return None
    return translate(event, position, contract.trusted if trusted else _validated)
