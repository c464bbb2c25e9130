"""The store's public events by range of positions, read in bulk (the projector's rebuild).

`select_notifications` + `to_public` per event cost ~45 µs: dict rows, a `Notification` per row,
then the mapper's generic path (topic resolution, id convertor lookup, a domain event object) before
the translation. This reader keeps the same meaning with less work per row:

- one query per window of positions, binary rows as plain tuples (no `Notification` objects;
  the store's queries, event_store.store_queries, run it on PostgreSQL or in memory);
- optionally only a shard of the aggregates (a byte of the aggregate id, evaluated by PostgreSQL),
  so worker processes can split a replay and still see each aggregate's events in store order;
- the stored state is parsed by orjson and its transcoded values revived as the store's own
  transcoder would (`state_decoder`), the event is rebuilt the way the mapper rebuilds it, then
  translated by `event_store.public` (the same translators the relay uses) into a public event
  built *trusted*: without pydantic's validation, as the store's events were validated when they
  were recorded (contracts.events.trusted). A store with a cipher, a compressor or upcasting falls
  back to the mapper itself (and validated events).

The store contract (tests/support/store_contract.py) checks the events equal the relay's, and
serialise the same, for every type; tests/unit/test_public_*.py check the decoder and the
trusted construction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Notification,
    Transcoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from eventsourcing.utils import resolve_topic

from contracts.events import PublicEvent
from event_store.application import TodoStore
from event_store.public import PUBLIC_TOPICS, public_event_of
from event_store.store_queries import EventRow, Shard
from event_store.trace_metadata import TRACE_KEY

# The public events of a window of stored rows, in their order (internal events left out).
Decode = Callable[[list[EventRow]], list[PublicEvent]]


class PublicEventReader:
    """Reads public events with `after < position <= until` in store order, through the store's
    queries (on PostgreSQL: one short transaction per call on a connection of the store's pool)."""

    def __init__(self, store: TodoStore) -> None:
        self._queries = store.queries
        self._topics = list(PUBLIC_TOPICS)
        self._decode = _fast_decoder(store) or _mapper_decoder(store)

    def read(self, after: int, until: int, shard: Shard | None = None) -> list[PublicEvent]:
        """The public events after `after` up to and including `until` (of `shard` only)."""
        return self._decode(self._queries.event_rows(after, until, self._topics, shard))


def _mapper_decoder(store: TodoStore) -> Decode:
    """The general path: exactly what the relay does."""
    mapper = store.mapper

    def decode(rows: list[EventRow]) -> list[PublicEvent]:
        events = []
        for position, originator_id, version, topic, state in rows:
            notification = Notification(
                id=position,
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=bytes(state),
            )
            event = public_event_of(mapper.to_domain_event(notification), position)
            if event is not None:
                events.append(event)
        return events

    return decode


def _fast_decoder(store: TodoStore) -> Decode | None:
    """What `Mapper.to_domain_event` does for our events (transcode the state, set the originator,
    drop the trace tag), minus its per-event lookups; None where that would not be the same."""
    mapper = store.mapper
    if mapper.cipher is not None or mapper.compressor is not None:
        return None
    classes = {topic: resolve_topic(topic) for topic in PUBLIC_TOPICS}
    if any(getattr(cls, "class_version", 1) != 1 for cls in classes.values()):
        return None  # upcasting: leave it to the mapper
    transcode = state_decoder(mapper.transcoder)
    new = object.__new__
    set_dict = object.__setattr__

    def decode(rows: list[EventRow]) -> list[PublicEvent]:
        events = []
        for position, originator_id, version, topic, state in rows:
            attributes: dict[str, Any] = transcode(state)
            attributes.pop(TRACE_KEY, None)
            attributes.pop("class_version", None)
            attributes["originator_id"] = originator_id
            attributes["originator_version"] = version
            event = new(classes[topic])
            set_dict(event, "__dict__", attributes)
            public = public_event_of(event, position, trusted=True)
            if public is not None:
                events.append(public)
        return events

    return decode


# Distinct ids remembered by a state decoder: the user ids of a window of tasks' events.
_UUID_CACHE_SIZE = 100_000
# Values orjson reads as the json module does; a float may not be (see revive).
_PLAIN = frozenset((str, int, bool, type(None)))


class _NotForOrjsonError(Exception):
    """A state orjson may not read as the json module does: decode it with the transcoder."""


def state_decoder(transcoder: Transcoder) -> Callable[[bytes], dict[str, Any]]:
    """The transcoder's decode, faster: the JSON parsed by orjson (a quarter of the cost of the
    json module's decoder with a Python `object_hook` per object), then the transcoded values
    (`{"_type_": name, "_data_": data}`, as JSONTranscoder._decode_obj reads them) revived
    depth-first, with the `uuid_hex` values remembered: every event of a task carries its user's
    id, so most of them were parsed a moment ago (UUID(hex) is a third of the transcoding). A state
    orjson refuses (NaN, Infinity, a lone surrogate) or may read otherwise (a float: orjson reads
    an integer beyond 64 bits as one) is decoded by the transcoder itself. Our events hold no
    floats, so that costs nothing in practice."""
    if type(transcoder) is not JSONTranscoder:
        return transcoder.decode
    names = dict(transcoder.names)
    uuid_hex = names.get("uuid_hex")
    if type(uuid_hex) is not UUIDAsHex:
        return transcoder.decode
    uuids: dict[str, UUID] = {}
    # The store's own datetime transcoding is datetime.fromisoformat: called directly.
    iso_datetimes = type(names.get("datetime_iso")) is DatetimeAsISO
    from_iso = datetime.fromisoformat
    loads, decode_error, strict = orjson.loads, orjson.JSONDecodeError, transcoder.decode

    def new_uuid(data: str) -> UUID:
        """A uuid_hex value not remembered yet (a UUID is never falsy: `get(...) or` this)."""
        if len(uuids) >= _UUID_CACHE_SIZE:
            uuids.clear()
        uuid = uuids[data] = UUID(data)
        return uuid

    def revive(value: Any) -> Any:
        if type(value) is list:
            return [v if type(v) in _PLAIN else revive(v) for v in value]
        if type(value) is float:  # orjson reads an integer beyond 64 bits as a float
            raise _NotForOrjsonError
        for key, item in value.items():  # a dict: its values first, as json's object_hook
            if type(item) not in _PLAIN:
                value[key] = revive(item)
        if len(value) != 2 or "_type_" not in value or "_data_" not in value:
            return value
        name, data = value["_type_"], value["_data_"]
        if name == "uuid_hex":
            return uuids.get(data) or new_uuid(data)
        if name not in names:
            raise TranscodingNotRegisteredError(f"no transcoding registered for {name!r}")
        return names[name].decode(data)

    def decode(state: bytes) -> dict[str, Any]:
        try:
            value = loads(state)
            if type(value) is not dict or (len(value) == 2 and "_type_" in value):
                return revive(value)  # type: ignore[no-any-return]
            # An event's state is a dict of plain values and transcoded ones: those revived here,
            # without a call of revive per value (what revive would do; anything else goes to it).
            for key, item in value.items():
                if type(item) in _PLAIN:
                    continue
                if (
                    type(item) is dict
                    and len(item) == 2
                    and type(data := item.get("_data_")) is str
                    and (name := item.get("_type_")) is not None
                ):
                    if name == "uuid_hex":
                        value[key] = uuids.get(data) or new_uuid(data)
                    elif name == "datetime_iso" and iso_datetimes:
                        value[key] = from_iso(data)
                    else:
                        value[key] = revive(item)
                else:
                    value[key] = revive(item)
            return value
        except (decode_error, _NotForOrjsonError):
            return strict(bytes(state))  # type: ignore[no-any-return]

    return decode
