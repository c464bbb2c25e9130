"""A polled batch as a consumer's handler sees it: every message decoded once from the public event
envelope (contracts.events), in poll order, and what the handler reports back (BatchResult).

A message is one of three items:
- Delivered: an event of a type this consumer handles;
- DeadLetter (POISON, consuming.poison): a message of such a type, or of no readable type, that
  cannot be decoded ("undecodable: ..."); the handler parks it (consuming.parking);
- Skipped: not this consumer's business: another type (told from the `type` header without
  decoding when there is one), or a type this code does not know (a newer producer's). Skipping is
  not poison: parking it would hold back its aggregate's later events for nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from consuming.poison import Kind, classify, describe
from consuming.source import Message, where
from contracts.dead_letters import (
    DeadLetter,
    Headers,
    LetterKind,
    message_headers,
    sequence_id,
    sniff,
)
from contracts.events import PublicEvent, UnknownEventTypeError, decode_event

log = logging.getLogger(__name__)

Partition = tuple[str, int]
Where = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class Delivered:
    """A decoded event and where it came from."""

    event: PublicEvent
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    headers: Headers = ()

    @property
    def where(self) -> Where:
        return self.topic, self.partition, self.offset

    @property
    def aggregate_id(self) -> str:
        return sequence_id(self.event)

    def letter(
        self, consumer: str, service: str, reason: str, kind: LetterKind = LetterKind.POISON
    ) -> DeadLetter:
        return DeadLetter(
            consumer,
            service,
            *self.where,
            self.key,
            self.value,
            reason,
            kind,
            self.aggregate_id,
            self.event.type,
            self.headers,
        )


@dataclass(frozen=True)
class Skipped:
    """A message that is not this consumer's business; only its offset matters (it is committed)."""

    topic: str
    partition: int
    offset: int

    @property
    def where(self) -> Where:
        return self.topic, self.partition, self.offset


Item = Delivered | DeadLetter | Skipped


@dataclass(frozen=True)
class Batch:
    items: Sequence[Item]  # in poll order

    @property
    def events(self) -> list[Delivered]:
        return [i for i in self.items if isinstance(i, Delivered)]

    @property
    def poison(self) -> list[DeadLetter]:
        return [i for i in self.items if isinstance(i, DeadLetter)]

    @property
    def skipped(self) -> int:
        return sum(isinstance(i, Skipped) for i in self.items)


@dataclass
class BatchResult:
    """What a handler did with a batch. `done`: how many items (in order) it finished; the loop
    commits those and reads the rest again (None: all of them)."""

    handled: int = 0  # applied to the read tables / emailed
    duplicates: int = 0  # delivered again, already handled
    gaps: int = 0  # (projector) skipped: an earlier event of its aggregate is missing
    parked: list[DeadLetter] = field(default_factory=list)  # as stored, for events.dlq
    done: int | None = None

    def add(self, other: BatchResult) -> None:
        self.handled += other.handled
        self.duplicates += other.duplicates
        self.gaps += other.gaps
        self.parked += other.parked


class Decoder:
    """Decodes polled messages for one consumer. `wanted`: the event types it handles (None: every
    type this code knows)."""

    def __init__(self, consumer: str, service: str, wanted: frozenset[str] | None) -> None:
        self._consumer = consumer
        self._service = service
        self._wanted = wanted
        self._unknown_types: set[str] = set()

    def decode(self, messages: Sequence[Message]) -> Batch:
        return Batch([self._item(m) for m in messages])

    def _item(self, message: Message) -> Item:
        topic, partition, offset = where(message)
        headers = message_headers(message.headers())
        declared = dict(headers).get("type")
        if declared is not None and not self._wants(declared.decode(errors="replace")):
            return Skipped(topic, partition, offset)  # not ours: no need to parse it
        value = message.value()
        try:
            event = decode_event(value or b"")
        except UnknownEventTypeError as e:
            self._note_unknown(e.event_type)
            return Skipped(topic, partition, offset)
        except Exception as e:
            if classify(e) is not Kind.POISON:
                raise
            aggregate_id, event_type = sniff(value, headers)
            if event_type is not None and not self._wants(event_type):
                return Skipped(topic, partition, offset)  # someone else's broken message
            return DeadLetter(
                consumer=self._consumer,
                service=self._service,
                topic=topic,
                partition=partition,
                offset=offset,
                key=message.key(),
                value=value,
                reason=f"undecodable: {describe(e)}",
                aggregate_id=aggregate_id,
                event_type=event_type,
                headers=headers,
            )
        if not self._wants(event.type):
            return Skipped(topic, partition, offset)
        return Delivered(event, topic, partition, offset, message.key(), value, headers)

    def _wants(self, event_type: str) -> bool:
        return self._wanted is None or event_type in self._wanted

    def _note_unknown(self, event_type: str) -> None:
        """Logged once per type (the count is in the loop's counters)."""
        if event_type not in self._unknown_types:
            self._unknown_types.add(event_type)
            log.warning("skipping events of an unknown type", extra={"type": event_type})


def next_offsets(items: Iterable[Item]) -> dict[Partition, int]:
    """The offsets to commit after `items`: per partition, the next one to read."""
    offsets: dict[Partition, int] = {}
    for item in items:
        topic, partition, offset = item.where
        offsets[topic, partition] = max(offsets.get((topic, partition), 0), offset + 1)
    return offsets


def first_offsets(items: Iterable[Item]) -> dict[Partition, int]:
    """Where to read again from: per partition, the first of `items`."""
    first: dict[Partition, int] = {}
    for item in items:
        topic, partition, offset = item.where
        first.setdefault((topic, partition), offset)
    return first
