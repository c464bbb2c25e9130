"""The store's port: the queries the commands and the readers need beyond eventsourcing's recorder
API, with one adapter per backend. Nothing outside `event_store/` reaches the recorder's tables;
this is where the store reads them (PostgreSQL: event_store.postgres_queries; eventsourcing's
in-memory POPO recorder: below, for unit tests and the store test case run on both backends)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder

# One stored event as a public reader gets it: (position, originator id, version, topic, state).
EventRow = tuple[int, UUID, int, str, bytes]


@dataclass(frozen=True)
class Shard:
    """The aggregates whose id's last byte % count == index."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count <= 256:
            raise ValueError(f"not a shard: {self.index} of {self.count}")

    def holds(self, aggregate_id: UUID) -> bool:
        return aggregate_id.bytes[15] % self.count == self.index


class StoreQueries(Protocol):
    def head_position(self) -> int:
        """The position of the last event recorded (0 for an empty store)."""
        ...

    def existing_ids(self, aggregate_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates have any event."""
        ...

    def latest_event(self, aggregate_id: UUID, topic: str) -> StoredEvent | None:
        """The aggregate's last event of this topic."""
        ...

    def event_rows(
        self, after: int, until: int, topics: Sequence[str], shard: Shard | None
    ) -> list[EventRow]:
        """The events of these topics with `after < position <= until`, of `shard`'s aggregates
        only (all of them for None), in store order."""
        ...

    def check_reachable(self) -> None:
        """Raises when the backend cannot be reached."""
        ...

    def discard_broken_connections(self) -> None:
        """Test the idle connections and replace the dead ones (a no-op without connections)."""
        ...


class InMemoryQueries:
    """The port on eventsourcing's POPO recorder, through its own API."""

    def __init__(self, recorder: POPOApplicationRecorder) -> None:
        self._recorder = recorder

    def head_position(self) -> int:
        return self._recorder.max_notification_id() or 0

    def existing_ids(self, aggregate_ids: Sequence[UUID]) -> set[UUID]:
        return {i for i in aggregate_ids if self._recorder.select_events(i, limit=1)}

    def latest_event(self, aggregate_id: UUID, topic: str) -> StoredEvent | None:
        events = self._recorder.select_events(aggregate_id, desc=True)
        return next((e for e in events if e.topic == topic), None)

    def event_rows(
        self, after: int, until: int, topics: Sequence[str], shard: Shard | None
    ) -> list[EventRow]:
        if until <= after:
            return []
        notifications = self._recorder.select_notifications(
            after, until - after, stop=until, topics=topics, inclusive_of_start=False
        )
        return [
            (n.id, UUID(str(n.originator_id)), n.originator_version, n.topic, n.state)
            for n in notifications
            if shard is None or shard.holds(UUID(str(n.originator_id)))
        ]

    def check_reachable(self) -> None:
        return None  # in this process: always there

    def discard_broken_connections(self) -> None:
        return None


def queries_for(recorder: ApplicationRecorder) -> StoreQueries:
    """The port's adapter for the store's backend."""
    if isinstance(recorder, PostgresApplicationRecorder):
        from event_store.postgres_queries import PostgresQueries  # it imports this module's types

        return PostgresQueries(recorder)
    if isinstance(recorder, POPOApplicationRecorder):
        return InMemoryQueries(recorder)
    raise TypeError(f"no store queries for {type(recorder).__name__}")
