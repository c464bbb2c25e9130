"""Dead-letter topic (KAFKA_DLQ_TOPIC): a digest the SMTP server refused for good, with the reason.

The original key and value are kept as they were; headers say why and where it came from:
`dlq.reason`, `dlq.code` (SMTP code, if any), `dlq.service` = mailer, `dlq.topic`,
`dlq.partition`, `dlq.offset`, plus the original `type` and `event_id`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, Producer

from common.kafka import producer_config
from common.settings import KafkaSettings
from mailer.incoming import Incoming


class DeadLetterError(Exception):
    pass


class KafkaDeadLetters:
    def __init__(self, settings: KafkaSettings) -> None:
        self._topic = settings.KAFKA_DLQ_TOPIC
        self._producer = Producer(producer_config(settings))

    async def send(self, message: Incoming, reason: str, code: int | None) -> None:
        """Publish and wait for Kafka's acknowledgement; raise DeadLetterError otherwise."""
        await asyncio.to_thread(self._send, message, reason, code)

    def _send(self, message: Incoming, reason: str, code: int | None) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        headers: dict[str, str | bytes | None] = {
            **message.headers,
            "dlq.reason": reason.encode(),
            "dlq.code": str(code or "").encode(),
            "dlq.service": b"mailer",
            "dlq.topic": message.topic.encode(),
            "dlq.partition": str(message.partition).encode(),
            "dlq.offset": str(message.offset).encode(),
        }
        self._producer.produce(
            self._topic,
            key=message.key,
            value=message.value,
            headers=headers,
            on_delivery=on_delivery,
        )
        remaining = self._producer.flush(30.0)
        if remaining or errors:
            raise DeadLetterError(f"dead letter not acknowledged: {errors or 'timeout'}")

    def close(self) -> None:
        self._producer.flush(5.0)
