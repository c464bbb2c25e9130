"""The dead-letter envelope, defined once for every producer of dead letters (projector, mailer),
and the one Kafka producer of topic KAFKA_DLQ_TOPIC (documented in docs/events.md).

A dead letter keeps the original key, value and headers untouched and adds `dlq.*` headers:
dlq.reason, dlq.kind (poison | parked), dlq.consumer (the consumer group), dlq.service,
dlq.topic, dlq.partition, dlq.offset (where it was read), dlq.aggregate_id (its sequence: task
id, user id or digest id; empty if unknown), dlq.event_type (empty if unknown), dlq.failed_at.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, get_args

from confluent_kafka import KafkaError, Producer

from consuming.poison import MAX_REASON, TransientError
from contracts.events import DailyDigestRequested, PublicEvent, TaskEvent
from runtime.kafka import close_producer, producer_config
from runtime.settings import KafkaSettings

Headers = tuple[tuple[str, bytes], ...]
# For messages that cannot be decoded: which JSON field names the aggregate of an event type.
_SEQUENCE_FIELD = {
    "user.registered": "user_id",
    "user.preferences_changed": "user_id",
    "email.daily_digest.requested": "digest_id",
    **{t.model_fields["type"].default: "task_id" for t in get_args(TaskEvent)},
}


class LetterKind(enum.Enum):
    POISON = "poison"  # the message failed itself
    PARKED = "parked"  # it did not fail: an earlier message of its aggregate is parked


def sequence_id(event: PublicEvent) -> str:
    """The aggregate an event belongs to: its events are applied, and parked, in order."""
    if isinstance(event, TaskEvent):
        return str(event.task_id)
    if isinstance(event, DailyDigestRequested):
        return str(event.digest_id)
    return str(event.user_id)  # the user's own events


def sniff(
    value: bytes | None, headers: Iterable[tuple[str, bytes]] = ()
) -> tuple[str | None, str | None]:
    """(aggregate id, event type) of a message that may not decode, as far as can be told."""
    declared = dict(headers).get("type")
    event_type = declared.decode(errors="replace") if declared else None
    try:
        body: Any = json.loads(value or b"")
    except ValueError:
        return None, event_type
    if not isinstance(body, dict):
        return None, event_type
    if isinstance(body.get("type"), str):
        event_type = body["type"]
    aggregate = body.get(_SEQUENCE_FIELD.get(event_type or "", ""))
    return (aggregate if isinstance(aggregate, str) and aggregate else None), event_type


@dataclass(frozen=True)
class DeadLetter:
    """A message a consumer could not handle (POISON) or held back behind one (PARKED)."""

    consumer: str
    service: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    kind: LetterKind = LetterKind.POISON
    aggregate_id: str | None = None
    event_type: str | None = None
    headers: Headers = ()
    failed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", self.reason[:MAX_REASON])

    @property
    def where(self) -> tuple[str, int, int]:
        return self.topic, self.partition, self.offset

    def parked_behind(self, head: tuple[str, int, int]) -> DeadLetter:
        topic, partition, offset = head
        reason = f"parked behind {topic}/{partition}/{offset} of aggregate {self.aggregate_id}"
        return replace(self, kind=LetterKind.PARKED, reason=reason)

    def kafka_headers(self) -> list[tuple[str, str | bytes | None]]:
        """The original headers (minus any earlier dlq.*), then the dlq.* envelope."""
        envelope = {
            "dlq.reason": self.reason,
            "dlq.kind": self.kind.value,
            "dlq.consumer": self.consumer,
            "dlq.service": self.service,
            "dlq.topic": self.topic,
            "dlq.partition": str(self.partition),
            "dlq.offset": str(self.offset),
            "dlq.aggregate_id": self.aggregate_id or "",
            "dlq.event_type": self.event_type or "",
            "dlq.failed_at": self.failed_at.isoformat(),
        }
        kept: list[tuple[str, str | bytes | None]] = [
            (k, v) for k, v in self.headers if not k.startswith("dlq.")
        ]
        return kept + [(k, v.encode()) for k, v in envelope.items()]


def headers_to_json(headers: Headers) -> list[list[str]]:
    """Headers as JSON (values base64: they are bytes and may not be text)."""
    return [[k, base64.b64encode(v).decode()] for k, v in headers]


def headers_from_json(data: Any) -> Headers:
    return tuple((str(k), base64.b64decode(v)) for k, v in (data or []))


def message_headers(raw: Any) -> Headers:
    """A consumed message's headers (confluent_kafka's list of pairs), as bytes."""
    pairs = raw.items() if isinstance(raw, dict) else (raw or [])
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs if v is not None)


class KafkaDeadLetters:
    """The one producer of dead letters. send() returns once Kafka acknowledged every letter;
    otherwise it raises TransientError (the caller retries; nothing is committed meanwhile)."""

    def __init__(self, settings: KafkaSettings, **overrides: Any) -> None:
        self._topic = settings.KAFKA_DLQ_TOPIC
        self._producer = Producer(producer_config(settings, **overrides))

    def send(self, letters: Sequence[DeadLetter]) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        for letter in letters:
            self._producer.produce(
                self._topic,
                key=letter.key,
                value=letter.value,
                headers=letter.kafka_headers(),
                on_delivery=on_delivery,
            )
        remaining = self._producer.flush(30)
        if remaining or errors:
            raise TransientError(
                f"dead letters not acknowledged: {remaining} pending, {len(errors)} failed"
                f" {errors[:1]}"
            )

    def close(self) -> None:
        close_producer(self._producer, 5)
