"""In-memory fakes of the consumer loop's ports (consuming.loop), for unit tests: the Kafka
source and its messages, the dead-letter sink, and the projector's projection (with the real
handlers and parking decisions); and the projector built by its composition root on them."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from consuming import parking
from consuming.batch import BatchResult, Delivered
from consuming.loop import ConsumerLoop
from consuming.poison import TransientError
from contracts.dead_letters import DeadLetter
from contracts.events import PublicEvent, encode_event
from projector.bootstrap import build_projector
from projector.handlers import apply_event
from projector.rows import Rows
from projector.settings import ProjectorSettings
from projector.sink import sort_out
from runtime.settings import ConsumerSettings, DatabaseSettings, KafkaSettings


@dataclass
class FakeMessage:
    _value: bytes | None
    _offset: int
    _partition: int = 0
    _topic: str = "events"
    _key: bytes | None = None
    _headers: list[tuple[str, bytes | None]] | None = None

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


@dataclass
class FakeSource:
    """Hands out the queued messages in batches; records commits."""

    messages: list[FakeMessage] = field(default_factory=list)
    commits: list[dict[tuple[str, int], int]] = field(default_factory=list)
    seeks: list[dict[tuple[str, int], int]] = field(default_factory=list)
    closed: bool = False

    def poll(self, max_messages: int, timeout: float) -> Sequence[FakeMessage]:
        batch, self.messages = self.messages[:max_messages], self.messages[max_messages:]
        return batch

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.commits.append(dict(offsets))

    def seek(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.seeks.append(dict(offsets))

    def close(self) -> None:
        self.closed = True

    @property
    def committed(self) -> dict[tuple[str, int], int]:
        merged: dict[tuple[str, int], int] = {}
        for c in self.commits:
            merged.update(c)
        return merged


class InMemoryProjection:
    """The projection port over a dict-based read model and parking table, with the real handlers
    and the real parking decisions (sort_out); a batch is all or nothing. `fail_with` lets a test
    make the next `apply` calls raise."""

    def __init__(self, consumer: str = "projector") -> None:
        self.consumer = consumer
        self.rows = Rows()
        self.parked: dict[tuple[str, int, int], DeadLetter] = {}
        self.fail_with: list[BaseException] = []
        self.refuse: Callable[[PublicEvent], BaseException | None] = lambda _e: None
        self.calls = 0

    def apply(self, batch: Sequence[Delivered], poison: Sequence[DeadLetter] = ()) -> BatchResult:
        self.calls += 1
        if self.fail_with:
            raise self.fail_with.pop(0)
        held = parking.Blockers({})
        for letter in self.parked.values():
            held.add(letter.aggregate_id, letter.where)
        to_apply, to_park = sort_out(self.consumer, batch, poison, held)
        work = copy.deepcopy(self.rows)
        work.gaps = work.duplicates = 0
        for d in to_apply:
            if (error := self.refuse(d.event)) is not None:
                raise error
            apply_event(work, d.event)
        stored = [self.parked.get(p.where, p) for p in to_park]
        result = BatchResult(
            len(to_apply) - work.duplicates - work.gaps, work.duplicates, work.gaps, stored
        )
        work.changed_users.clear()
        work.changed_tasks.clear()
        self.rows = work
        self.parked.update((p.where, p) for p in stored)
        return result

    def close(self) -> None:
        pass


@dataclass
class FakeDeadLetters:
    sent: list[DeadLetter] = field(default_factory=list)
    fail_times: int = 0

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise TransientError("broker unavailable")
        self.sent.extend(letters)

    def close(self) -> None:
        pass


def fake_messages(
    events: list[PublicEvent], partition: int = 0, start: int = 0
) -> list[FakeMessage]:
    """The events as Kafka delivers them: one partition, offsets from `start`, keyed by user."""
    return [
        FakeMessage(encode_event(e), start + i, partition, _key=str(e.user_id).encode())
        for i, e in enumerate(events)
    ]


def quick_retries(bug_retries: int = 5) -> ConsumerSettings:
    """The consumer policy with retries in milliseconds, for tests that go through them."""
    return ConsumerSettings(
        CONSUMER_RETRY_INITIAL_SECONDS=0.001,
        CONSUMER_RETRY_MAX_SECONDS=0.01,
        CONSUMER_BUG_RETRIES=bug_retries,
    )


def projector_on_fakes(
    source: FakeSource, batch_size: int = 100, bug_retries: int = 5
) -> tuple[ConsumerLoop, InMemoryProjection, FakeDeadLetters]:
    """The projector as its composition root builds it, on fake ports."""
    projection, dead = InMemoryProjection(), FakeDeadLetters()
    projector = build_projector(
        DatabaseSettings(),
        KafkaSettings(),
        ProjectorSettings(PROJECTOR_BATCH_SIZE=batch_size),
        source=source,
        projection=projection,
        dead_letters=dead,
        policy=quick_retries(bug_retries),
    )
    return projector, projection, dead
