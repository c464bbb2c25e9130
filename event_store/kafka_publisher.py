"""The relay's Kafka side: publish a batch of public events, in order, with an idempotent
producer (acks=all), and wait for the broker to acknowledge all of it. A fatal producer error (see
runtime.kafka) replaces the producer; the batch is then published again by the relay."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, Producer

from consuming.poison import TransientError
from contracts.events import PublicEvent, encode_event
from runtime import tracing
from runtime.kafka import close_producer, is_fatal, producer_config
from runtime.settings import KafkaSettings

log = logging.getLogger(__name__)


class PublishError(TransientError):
    """Kafka did not acknowledge the batch: transient, the same batch is published again."""


class Publisher(Protocol):
    def publish(
        self,
        events: Sequence[PublicEvent],
        should_stop: Callable[[], bool],
        traceparents: Sequence[str | None] = (),
    ) -> None:
        """Deliver all events, in order, or raise PublishError. `traceparents[i]`, if given and
        not None, goes with events[i] as the Kafka header `traceparent`."""

    def close(self) -> None: ...


class KafkaPublisher:
    def __init__(self, settings: KafkaSettings, **config_overrides: Any) -> None:
        self._settings = settings
        # The relay batches itself (up to RELAY_BATCH_SIZE per read) and flushes each batch at
        # once: lingering would only add its delay to every event's freshness.
        self._overrides = {"linger.ms": 0, **config_overrides}
        self._producer = Producer(producer_config(settings, **self._overrides))

    def publish(
        self,
        events: Sequence[PublicEvent],
        should_stop: Callable[[], bool],
        traceparents: Sequence[str | None] = (),
    ) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        traces = list(traceparents) or [None] * len(events)
        for event, traceparent in zip(events, traces, strict=True):
            self._produce(event, traceparent, on_delivery)
        while self._producer.flush(1.0) > 0:
            if should_stop():
                raise PublishError("stopping before Kafka acknowledged the batch")
        if errors:
            if any(is_fatal(e) for e in errors):
                self._reset_producer()
            raise PublishError(f"{len(errors)} deliveries failed, first: {errors[0]}")

    def _produce(
        self, event: PublicEvent, traceparent: str | None, on_delivery: Callable[..., None]
    ) -> None:
        headers: dict[str, str | bytes | None] = {
            "type": event.type,
            "event_id": str(event.event_id),
        }
        if traceparent is not None:  # the command's trace (docs/events.md "Trace context")
            headers[tracing.HEADER] = traceparent
        while True:
            try:
                self._producer.produce(
                    self._settings.KAFKA_TOPIC,
                    key=str(event.user_id).encode(),
                    value=encode_event(event),
                    headers=headers,
                    on_delivery=on_delivery,
                )
                self._producer.poll(0)
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)

    def _reset_producer(self) -> None:
        log.warning("producer hit a fatal error; creating a new one")
        failed = self._producer
        self._producer = Producer(producer_config(self._settings, **self._overrides))
        close_producer(failed, 0)  # its batch failed: the relay publishes it again

    def close(self) -> None:
        if dropped := close_producer(self._producer, 5.0):
            log.warning("closed with events not acknowledged", extra={"dropped": dropped})
