"""A consumed Kafka message as the mailer needs it (decoupled from confluent_kafka for tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Incoming:
    """One consumed Kafka message, as the mailer needs it (decoupled from confluent_kafka)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @classmethod
    def from_kafka(cls, msg: Any) -> Incoming:
        return cls(
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            key=msg.key(),
            value=msg.value(),
            headers={k: v for k, v in (msg.headers() or []) if v is not None},
        )

    @property
    def where(self) -> tuple[str, int, int]:
        return self.topic, self.partition, self.offset

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.decode(errors="replace") if value is not None else None
