"""The public event contract: what travels on Kafka topic `events` (JSON, key = user id).

Defined once here and imported by the relay (producer), projector and mailer (consumers).
docs/events.md explains it; docs/events.schema.json is generated from these models
(`python -m contracts.events > docs/events.schema.json`) and a test keeps the two equal.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, SafeUUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

SCHEMA_VERSION = 1
# Namespace for event ids: uuid5(namespace, "<aggregate id>/<aggregate version>") is stable across
# re-sends, so consumers can deduplicate on it.
EVENT_ID_NAMESPACE = UUID("6f1c1f4e-2f7a-4c55-9a55-3f1f6c1c0b7e")


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
# RFC 4122 version 5 and variant bits, as uuid.uuid5 sets them.
_CLEAR_BITS = ~(0xF000 << 64 | 0xC000 << 48)
_SET_BITS = 0x5000 << 64 | 0x8000 << 48
# The hashed name's start (namespace + "<aggregate id>/") by aggregate: an aggregate's events come
# in runs (a rebuild reads a task's few events within one window), and str(UUID) is a third of the
# cost of an id. Bounded: cleared when full.
_NAME_PREFIXES: dict[UUID, bytes] = {}
_NAME_PREFIXES_MAX = 65_536
_VERSIONS = [b"%d" % n for n in range(64)]  # the name's end for the usual versions
_sha1 = hashlib.sha1
# UUID's slots, set through their descriptors (cheaper than object.__setattr__ by name).
_set_uuid_int = vars(UUID)["int"].__set__
_set_uuid_safe = vars(UUID)["is_safe"].__set__


def public_event_id(aggregate_id: UUID, aggregate_version: int) -> UUID:
    """uuid5(EVENT_ID_NAMESPACE, "<aggregate id>/<version>"), built without `UUID.__init__`'s
    argument checks and with the aggregate's part of the name remembered: a third of the cost of
    uuid.uuid5, which a rebuild pays once per event (a unit test keeps the two equal)."""
    prefix = _NAME_PREFIXES.get(aggregate_id)
    if prefix is None:
        if len(_NAME_PREFIXES) >= _NAME_PREFIXES_MAX:
            _NAME_PREFIXES.clear()
        prefix = _NAME_PREFIXES[aggregate_id] = _NAMESPACE_BYTES + f"{aggregate_id}/".encode()
    version = (
        _VERSIONS[aggregate_version] if 0 <= aggregate_version < 64 else b"%d" % aggregate_version
    )
    digest = _sha1(prefix + version, usedforsecurity=False).digest()
    value = (int.from_bytes(digest[:16]) & _CLEAR_BITS) | _SET_BITS
    event_id = object.__new__(UUID)
    _set_uuid_int(event_id, value)
    _set_uuid_safe(event_id, SafeUUID.unknown)
    return event_id


class _DeferredEventId(UUID):
    """public_event_id(aggregate, version), computed the first time it is looked at. A bulk replay
    of the store builds a million events whose ids nothing reads (the read model stores none):
    the hash is a fifth of building such an event. UUID keeps its value in the slot `int`; left
    unset, reading it falls through to __getattr__, which computes and sets it, so everything
    UUID does (==, hash, str, bytes, pickling, pydantic's JSON) sees the same value as
    uuid.uuid5 gives."""

    __slots__ = ("_name",)

    def __getattr__(self, attribute: str) -> Any:
        if attribute != "int":
            raise AttributeError(attribute)
        aggregate_id, aggregate_version = self._name
        value = public_event_id(aggregate_id, aggregate_version).int
        _set_uuid_int(self, value)
        _set_uuid_safe(self, SafeUUID.unknown)
        return value

    def __repr__(self) -> str:
        return f"UUID({str(self)!r})"


_set_deferred_name = vars(_DeferredEventId)["_name"].__set__


def deferred_event_id(aggregate_id: UUID, aggregate_version: int) -> UUID:
    """The event id public_event_id gives, computed only when first used (see _DeferredEventId):
    for events built trusted from the store."""
    event_id = object.__new__(_DeferredEventId)
    _set_deferred_name(event_id, (aggregate_id, aggregate_version))
    return event_id


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID
    occurred_at: datetime
    user_id: UUID
    position: int = Field(
        ge=1, description="Notification id of the event in the store (global order)"
    )
    aggregate_version: int = Field(ge=1, description="Version of the aggregate after this event")
    schema_version: int = SCHEMA_VERSION


class UserRegistered(_Envelope):
    type: Literal["user.registered"] = "user.registered"
    email: str


class UserPreferencesChanged(_Envelope):
    """The user's preferences after the change (both, whichever changed)."""

    type: Literal["user.preferences_changed"] = "user.preferences_changed"
    timezone: str = Field(description="IANA time zone name, e.g. `Europe/Paris`")
    digest_enabled: bool = Field(description="False: the user gets no daily digest")


class _TaskEnvelope(_Envelope):
    task_id: UUID  # every task event names its task


class TaskCreated(_TaskEnvelope):
    type: Literal["task.created"] = "task.created"
    title: str


class TaskRenamed(_TaskEnvelope):
    type: Literal["task.renamed"] = "task.renamed"
    title: str


class TaskCompleted(_TaskEnvelope):
    type: Literal["task.completed"] = "task.completed"
    done_at: datetime


class TaskReopened(_TaskEnvelope):
    type: Literal["task.reopened"] = "task.reopened"


class TaskDeleted(_TaskEnvelope):
    type: Literal["task.deleted"] = "task.deleted"


class TaskRestored(_TaskEnvelope):
    type: Literal["task.restored"] = "task.restored"


class DigestStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: int = Field(ge=0)
    done: int = Field(ge=0)
    undone: int = Field(ge=0)


class DailyDigestRequested(_Envelope):
    type: Literal["email.daily_digest.requested"] = "email.daily_digest.requested"
    digest_id: UUID
    digest_date: date
    email: str
    stats: DigestStats
    undone_titles: list[str]
    timezone: str = Field(
        default="UTC",
        description="The user's IANA time zone when recorded; `digest_date` is a local date in it",
    )


PublicEvent = Annotated[
    UserRegistered
    | UserPreferencesChanged
    | TaskCreated
    | TaskRenamed
    | TaskCompleted
    | TaskReopened
    | TaskDeleted
    | TaskRestored
    | DailyDigestRequested,
    Field(discriminator="type"),
]
TaskEvent = TaskCreated | TaskRenamed | TaskCompleted | TaskReopened | TaskDeleted | TaskRestored

_ADAPTER: TypeAdapter[PublicEvent] = TypeAdapter(PublicEvent)


class _Layout:
    """What a validated instance of a model holds beside the values given: every field in declared
    order (its default where it has one, a placeholder where it is required)."""

    def __init__(self, model: type[BaseModel]) -> None:
        fields = model.__pydantic_fields__
        self.template = {n: f.get_default(call_default_factory=True) for n, f in fields.items()}
        self.required = frozenset(n for n, f in fields.items() if f.is_required())


_LAYOUTS: dict[type[BaseModel], _Layout] = {}
_new = object.__new__
# The slots every model instance fills, set through their descriptors (cheaper than
# object.__setattr__'s lookup by name, per event of a rebuild).
_SLOTS = vars(BaseModel)
_set_dict = _SLOTS["__dict__"].__set__
_set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__


def trusted[M: BaseModel](model: type[M], values: dict[str, Any]) -> M:
    """`model(**values)` for values already valid and of their fields' types, without pydantic's
    validation: the instance validation would build (same fields in declared order, defaults
    filled in, same `model_fields_set`). For the store's events only (validated when they were
    recorded, read back as the types they were written as); everything from outside goes through
    validation. A test keeps both constructions equal for every event type."""
    layout = _LAYOUTS.get(model)
    if layout is None:
        layout = _LAYOUTS[model] = _Layout(model)
    state = layout.template.copy()
    state.update(values)
    # No field unknown (the state grew) and none missing (C-level key checks: cheap).
    if len(state) != len(layout.template) or not values.keys() >= layout.required:
        raise TypeError(f"{model.__name__} cannot hold {sorted(values)}")
    instance = _new(model)
    _set_dict(instance, state)
    _set_fields_set(instance, set(values))
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def encode_event(event: PublicEvent) -> bytes:
    return event.model_dump_json().encode()


class UnknownEventTypeError(ValueError):
    """A well-formed message whose `type` this code does not know: a newer producer's event.
    Consumers skip it (forward compatibility: new types are added before consumers learn them);
    it is not poison to a consumer that projects only what it knows."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


def decode_event(raw: bytes | str) -> PublicEvent:
    """Parse one message value; raises UnknownEventTypeError for a JSON object whose `type` is a
    string this contract does not list, pydantic.ValidationError for anything else off-contract."""
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as e:
        # Only the discriminator itself (loc ()) unknown; a known type with bad fields is poison.
        for error in e.errors():
            body = error.get("input")
            if error["type"] == "union_tag_invalid" and error["loc"] == ():
                tag = body.get("type") if isinstance(body, dict) else None
                if isinstance(tag, str):
                    raise UnknownEventTypeError(tag) from e
        raise


def json_schema() -> dict[str, object]:
    schema = _ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Public events on Kafka topic `events`"
    return schema


if __name__ == "__main__":
    json.dump(json_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
