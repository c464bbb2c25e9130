"""Translation from stored domain events to the public contract (contracts.events).

The one place that decides what leaves the store: internal events (email claims) are not published
and the password hash is never copied. Used by the relay (to Kafka) and by the projector's rebuild
(replaying the store), so both see exactly the same events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

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


# translate(domain event, position, event id, make) -> the public event
Translator = Callable[[Any, int, UUID, Make], PublicEvent]


def _validated[M: BaseModel](model: type[M], values: dict[str, Any]) -> M:
    return model(**values)


def _envelope(e: Any, position: int, event_id: UUID, user_id: Any) -> dict[str, Any]:
    """The envelope's fields, in a dict the translator adds the type's own to (a rebuild builds a
    million: one dict per event, no keyword packing)."""
    return {
        "event_id": event_id,
        "occurred_at": e.timestamp,
        "user_id": user_id,
        "position": position,
        "aggregate_version": e.originator_version,
    }


def _task_envelope(e: Any, position: int, event_id: UUID) -> dict[str, Any]:
    fields = _envelope(e, position, event_id, e.user_id)
    fields["task_id"] = e.originator_id  # every task event names its task
    return fields


def _user_registered(e: Any, pos: int, event_id: UUID, make: Make) -> PublicEvent:
    fields = _envelope(e, pos, event_id, e.originator_id)
    fields["email"] = e.email
    return make(contract.UserRegistered, fields)


def _user_preferences_changed(e: Any, pos: int, event_id: UUID, make: Make) -> PublicEvent:
    fields = _envelope(e, pos, event_id, e.originator_id)
    fields["timezone"] = e.timezone
    fields["digest_enabled"] = e.digest_enabled
    return make(contract.UserPreferencesChanged, fields)


def _task_event(model: type[contract.TaskEvent], *own: str) -> Translator:
    """A task event's translator: the envelope, the task id, and the type's own fields, each the
    domain event's attribute of the same name."""

    def translate(e: Any, pos: int, event_id: UUID, make: Make) -> PublicEvent:
        fields = _task_envelope(e, pos, event_id)
        for name in own:
            fields[name] = getattr(e, name)
        return make(model, fields)

    return translate


def _digest_requested(e: Any, pos: int, event_id: UUID, make: Make) -> PublicEvent:
    fields = _envelope(e, pos, event_id, e.user_id)
    fields["digest_id"] = e.originator_id
    fields["digest_date"] = e.digest_date
    fields["email"] = e.email
    fields["stats"] = make(
        contract.DigestStats, {"total": e.total, "done": e.done, "undone": e.total - e.done}
    )
    # A list of its own, as validation would copy it (never shared with the domain event).
    fields["undone_titles"] = list(e.undone_titles)
    # Digests recorded before timezones were in UTC (their stored events lack the field).
    fields["timezone"] = getattr(e, "timezone", DEFAULT_TIMEZONE)
    return make(contract.DailyDigestRequested, fields)


_TRANSLATORS: dict[type, Translator] = {
    User.Registered: _user_registered,
    User.PreferencesChanged: _user_preferences_changed,
    Task.Created: _task_event(contract.TaskCreated, "title"),
    Task.Renamed: _task_event(contract.TaskRenamed, "title"),
    Task.Completed: _task_event(contract.TaskCompleted, "done_at"),
    Task.Reopened: _task_event(contract.TaskReopened),
    Task.Deleted: _task_event(contract.TaskDeleted),
    Task.Restored: _task_event(contract.TaskRestored),
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
    built without validation (contracts.events.trusted) and with its id computed when first read
    (contracts.events.deferred_event_id), for events read back from the store in bulk."""
    translate = _TRANSLATORS.get(type(event))
    if translate is None:
        return None
    if trusted:
        event_id = contract.deferred_event_id(event.originator_id, event.originator_version)
        return translate(event, position, event_id, contract.trusted)
    event_id = contract.public_event_id(event.originator_id, event.originator_version)
    return translate(event, position, event_id, _validated)
