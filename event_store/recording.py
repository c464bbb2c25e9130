"""How the store records and reads, under its commands (event_store.application): eventsourcing's
Application with our mapper and transcodings, the group committer every command's events go
through, and the store's queries (event_store.store_queries) on whichever backend it runs on —
PostgreSQL, or eventsourcing's in-memory POPO recorder when no persistence module is configured."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    InternalError,
    JSONTranscoder,
    Mapper,
    Recording,
    Transcoding,
)

from event_store.group_commit import GroupCommitter
from event_store.store_errors import STORE_UNAVAILABLE
from event_store.store_queries import StoreQueries, queries_for
from event_store.trace_metadata import TraceTags, TracingMapper

A = TypeVar("A", bound=Aggregate)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class RecordingApplication(Application[UUID]):
    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        batch_max: int = 64,
        command_timeout: float = 10.0,
    ) -> None:
        self._trace_tags = TraceTags()  # before super(): construct_mapper() needs it
        super().__init__(env=env)
        self._committer = GroupCommitter(
            self._save_events,
            max_batch=batch_max,
            timeout=command_timeout,
            unavailable=STORE_UNAVAILABLE,
        )
        self._checking_pool = threading.Lock()
        self.queries: StoreQueries = queries_for(self.recorder)

    def construct_recorder(self) -> ApplicationRecorder:
        # Processes starting together (make run, compose) race on eventsourcing's idempotent DDL
        # (CREATE TABLE IF NOT EXISTS / CREATE OR REPLACE FUNCTION) and PostgreSQL may refuse
        # one of them ("tuple concurrently updated", duplicate type name): retry briefly.
        for attempt in range(5):
            try:
                return super().construct_recorder()
            except (IntegrityError, InternalError):
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def construct_mapper(self) -> Mapper[UUID]:
        # The command's trace context goes into the stored event's metadata (trace_metadata.py).
        return TracingMapper(self._trace_tags, transcoder=self.construct_transcoder())

    @property
    def tracing_mapper(self) -> TracingMapper:
        mapper = self.mapper
        assert isinstance(mapper, TracingMapper)
        return mapper

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def close(self) -> None:
        self._committer.close()
        super().close()

    def head_position(self) -> int:
        """The position of the last event recorded (0 for an empty store)."""
        return self.queries.head_position()

    def check_reachable(self) -> bool:
        """True when the store's database answers (readiness); raises when it does not."""
        self.queries.check_reachable()
        return True

    def discard_broken_connections(self) -> None:
        """After PostgreSQL restarts, every idle connection in the pool is dead but the pool does
        not know (pre-ping is off: it would cost a round-trip per use). Called when a command hit
        an unavailable store: test the idle connections once and replace the dead ones, instead
        of failing one more request per pooled connection. Concurrent calls check once."""
        if not self._checking_pool.acquire(blocking=False):
            return
        try:
            self.queries.discard_broken_connections()
        finally:
            self._checking_pool.release()

    # --- for the commands --------------------------------------------------------------------

    def _commit(self, *aggregates: Aggregate) -> int | None:
        """Record the aggregates' new events atomically; the position of the last one."""
        recordings = self._commit_events([e for agg in aggregates for e in agg.collect_events()])
        return recordings[-1].notification.id if recordings else None

    def _commit_events(self, events: Sequence[Any]) -> list[Recording[Any]]:
        with self._trace_tags.tag(events):  # in the caller's context, not the writer thread's
            return self._committer.commit(events)

    def _save_events(self, *events: Any) -> list[Recording[UUID]]:
        """What Application.save does with domain events, the group committer's one use of it:
        the same steps (tests/unit/test_recording_save.py holds them to the library's), with the
        events taken as they are. save() first asks of each object whether it is a domain event
        through the library's runtime-checkable Protocol, which typing answers attribute by
        attribute (~8 µs per event on Python 3.12: a few % of the command API's CPU)."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        processing_event.events.extend(events)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # deprecated by the library, called as save() does
        return recordings

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _existing(self, aggregate_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates have any event: one query instead of one per id."""
        return self.queries.existing_ids(aggregate_ids)

    def _get(self, cls: type[A], aggregate_id: UUID) -> A | None:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, cls) else None

    def _latest_event(self, aggregate_id: UUID, topic: str) -> Any | None:
        """The aggregate's last event of this topic, as a domain event (one indexed row, no
        aggregate to rebuild)."""
        stored = self.queries.latest_event(aggregate_id, topic)
        return None if stored is None else self.mapper.to_domain_event(stored)
