"""Trace context in the stored event's metadata, outside the domain.

The domain events know nothing of tracing. The command's caller tags each event it is about to
save with the current traceparent (`TraceTags.tag`, in the caller's context: with group commit the
save itself runs on the writer thread, whose context is not the command's). The store's mapper
adds the tag to the stored state under a reserved key when it maps the event, and strips it again
when it maps a stored event back, so aggregates and the public contract never see it. Events
stored before this existed simply have no key: they load and relay as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent

from runtime import tracing

# Reserved: no domain event has an attribute of this name (dunder-ish to rule out clashes).
TRACE_KEY = "__traceparent__"


class TraceTags:
    """traceparent per domain event object waiting to be saved (keyed by identity: the events
    stay referenced by their pending command until the save is over)."""

    def __init__(self) -> None:
        # Single-key set/pop on a dict are atomic under the GIL: no lock on the hot path.
        self._tags: dict[int, str] = {}

    @contextmanager
    def tag(self, events: Iterable[Any]) -> Iterator[None]:
        """Tag `events` with the caller's current trace for the duration of their save."""
        traceparent = tracing.current_traceparent()
        if traceparent is None:
            yield
            return
        keys = [id(e) for e in events]
        for k in keys:
            self._tags[k] = traceparent
        try:
            yield
        finally:
            for k in keys:
                self._tags.pop(k, None)

    def get(self, event: Any) -> str | None:
        return self._tags.get(id(event))


class TracingMapper(Mapper[UUID]):
    def __init__(self, tags: TraceTags, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tags = tags

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        traceparent = self.tags.get(domain_event)
        if traceparent is None:
            return super().to_stored_event(domain_event)
        # The base mapper encodes vars(event); a shallow stand-in with one more key keeps its
        # transcoding, compression and encryption steps untouched.
        tagged: Any = object.__new__(type(domain_event))
        object.__setattr__(tagged, "__dict__", {**vars(domain_event), TRACE_KEY: traceparent})
        return super().to_stored_event(tagged)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        return self.to_domain_event_with_trace(stored_event)[0]

    def to_domain_event_with_trace(
        self, stored_event: StoredEvent
    ) -> tuple[DomainEventProtocol[UUID], str | None]:
        """The domain event and the traceparent it was saved under (None for older events)."""
        event = super().to_domain_event(stored_event)
        traceparent = vars(event).pop(TRACE_KEY, None)
        return event, traceparent
