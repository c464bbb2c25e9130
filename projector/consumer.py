"""The projector's loop: poll a batch, decode, apply it in one transaction (parking poison and
what waits behind it in that same transaction), publish the dead letters, then commit offsets.

The failure rules are the shared poison policy (common.poison):
- An event type this code does not know (a newer producer's) is skipped, not poison.
- POISON (undecodable, breaks the contract, refused as data by a handler or the database): the
  message is parked with its reason and later events of its aggregate are parked behind it
  (common.parking); every other aggregate keeps flowing. A refused batch is re-applied one event at
  a time to find the culprit.
- TRANSIENT (PostgreSQL or Kafka unavailable): the same batch is retried with capped backoff,
  forever; nothing is committed meanwhile.
- BUG (anything else): retried CONSUMER_BUG_RETRIES times, then the projector halts: it takes no
  more messages, commits nothing more and /ready answers 503 with the reason.
A crash at any point re-delivers the uncommitted batch, which version checks and the idempotent
parking turn into no-ops (dead letters are re-published: events.dlq is at-least-once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from common import metrics, tracing
from common.dead_letters import DeadLetter, LetterKind, message_headers, sniff
from common.events import UnknownEventTypeError, decode_event
from common.health import Heartbeat
from common.poison import Backoff, BugBudget, HaltedError, Kind, classify, describe
from projector.kafka_source import Message, MessageSource, where
from projector.sink import BatchResult, Delivered

log = logging.getLogger(__name__)


class Projection(Protocol):
    def apply(self, batch: Sequence[Delivered], poison: Sequence[DeadLetter] = ()) -> BatchResult:
        """Apply `batch` and park `poison` (and what waits behind it) atomically, or raise."""

    def close(self) -> None: ...


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Durable when it returns; raises (TransientError) otherwise."""

    def close(self) -> None: ...


class StopRequestedError(Exception):
    """stop() was called while waiting to retry."""


class _PoisonError(Exception):
    """What _retry raises for a POISON failure (the original exception is the cause)."""


@dataclass
class Counters:
    messages: int = 0
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    dead_letters: int = 0
    batches: int = 0
    skipped: int = 0  # of an event type this projector does not know


class Projector:
    def __init__(
        self,
        source: MessageSource,
        projection: Projection,
        dead_letters: DeadLetterSink,
        *,
        consumer: str = "projector",
        batch_size: int = 500,
        poll_timeout: float = 0.5,
        backoff: Backoff | None = None,
        bug_retries: int = 5,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._source = source
        self.heartbeat = heartbeat or Heartbeat()
        self._projection = projection
        self._dead_letters = dead_letters
        self._consumer = consumer
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._backoff = backoff or Backoff(0.1, 5.0)
        self._budget = BugBudget(bug_retries, lambda reason: self.heartbeat.halt(reason))
        self._stop = threading.Event()
        self._source_open = True
        self.counters = Counters()
        self._unknown_types: set[str] = set()
        metrics.register(*metrics.PROJECTOR)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        log.info("projector started", extra={"consumer": self._consumer})
        try:
            while not self._stop.is_set():
                self.step()
        except StopRequestedError:
            pass
        except HaltedError:
            # Stay alive and not ready (the reason is on /ready) until an operator restarts us;
            # leaving the group hands our partitions to the other members, uncommitted.
            self._close_source()
            self._stop.wait()
        finally:
            log.info("projector stopped", extra={"counters": vars(self.counters)})

    def step(self) -> int:
        """Handle one polled batch end to end; returns how many messages it handled."""
        self.heartbeat.beat()
        messages = self._source.poll(self._batch_size, self._poll_timeout)
        if not messages:
            return 0
        received_at = time.time()
        decoded: list[Delivered] = []
        poison: list[DeadLetter] = []
        for m in messages:
            try:
                event = decode_event(m.value() or b"")
            except UnknownEventTypeError as e:
                self._skip_unknown(e.event_type)
                continue
            except Exception as e:
                if classify(e) is not Kind.POISON:
                    raise
                poison.append(self._letter(m, f"undecodable: {describe(e)}"))
            else:
                headers = message_headers(m.headers())
                decoded.append(Delivered(event, *where(m), m.key(), m.value(), headers))
        parked = self._apply(decoded, poison)
        applied_at = time.time()
        # One span per event, child of its command's; logged (one line each) at DEBUG.
        if log.isEnabledFor(logging.DEBUG) or tracing.exporting():
            for d in decoded:
                with tracing.span("project", parent=tracing.from_kafka_headers(d.headers) or b""):
                    log.debug("event handled", extra={"event_id": str(d.event.event_id)})
        if parked:
            self._retry(lambda: self._dead_letters.send(parked), "dead-letter send")
            for letter in parked:
                log.warning(
                    "message parked",
                    extra={
                        "topic": letter.topic,
                        "partition": letter.partition,
                        "offset": letter.offset,
                        "aggregate_id": letter.aggregate_id,
                        "kind": letter.kind.value,
                        "reason": letter.reason,
                    },
                )
        committed = _next_offsets(messages)
        self._source.commit(committed)
        _observe_hops(messages, received_at, applied_at)
        metrics.count_dead_letters("projector", ((p.kind.value, p.reason) for p in parked))
        metrics.observe_consumer(
            "projector",
            committed,
            ((d.where[:2], d.event.position, d.event.occurred_at) for d in decoded),
            getattr(self._source, "high_watermark", None),  # KafkaSource has it, fakes may not
        )
        self.counters.messages += len(messages)
        self.counters.dead_letters += len(parked)
        self.counters.batches += 1
        return len(messages)

    def _skip_unknown(self, event_type: str) -> None:
        """A newer producer's event type: nothing to project, and not poison (parking it would
        hold back its aggregate's later events for a type we simply do not need). Its offset is
        committed with the batch's; logged once per type, counted."""
        self.counters.skipped += 1
        if event_type not in self._unknown_types:
            self._unknown_types.add(event_type)
            log.warning("skipping events of an unknown type", extra={"type": event_type})

    def _letter(self, message: Message, reason: str) -> DeadLetter:
        headers = message_headers(message.headers())
        aggregate_id, event_type = sniff(message.value(), headers)
        return DeadLetter(
            consumer=self._consumer,
            service="projector",
            topic=where(message)[0],
            partition=where(message)[1],
            offset=where(message)[2],
            key=message.key(),
            value=message.value(),
            reason=reason,
            aggregate_id=aggregate_id,
            event_type=event_type,
            headers=headers,
        )

    def _apply(self, decoded: list[Delivered], poison: list[DeadLetter]) -> list[DeadLetter]:
        try:
            return self._apply_batch(decoded, poison)
        except _PoisonError as e:
            if len(decoded) + len(poison) == 1 and decoded:
                return self._park(decoded[0], e)
            log.warning("batch refused; applying its events one by one", extra={"error": str(e)})
        parked: list[DeadLetter] = []
        items: list[Delivered | DeadLetter] = sorted([*decoded, *poison], key=lambda i: i.where)
        for item in items:
            if isinstance(item, DeadLetter):
                parked += self._apply_batch([], [item])
                continue
            try:
                parked += self._apply_batch([item], [])
            except _PoisonError as e:
                parked += self._park(item, e)
        return parked

    def _park(self, delivered: Delivered, error: _PoisonError) -> list[DeadLetter]:
        reason = f"unappliable: {describe(error.__cause__ or error)}"
        letter = delivered.letter(self._consumer, reason, LetterKind.POISON)
        return self._apply_batch([], [letter])

    def _apply_batch(
        self, batch: Sequence[Delivered], poison: Sequence[DeadLetter]
    ) -> list[DeadLetter]:
        result = self._retry(lambda: self._projection.apply(batch, poison), "apply")
        self.counters.applied += result.applied
        self.counters.duplicates += result.duplicates
        self.counters.gaps += result.gaps
        return result.parked

    def _retry[T](self, action: Callable[[], T], what: str) -> T:
        """The policy's retries: TRANSIENT forever, BUG within the budget, POISON not at all."""
        while True:
            try:
                result = action()
            except Exception as e:
                kind = classify(e)
                if kind is Kind.POISON:
                    raise _PoisonError(describe(e)) from e
                if kind is Kind.TRANSIENT:
                    log.warning(f"{what} failed, retrying", extra={"error": describe(e)})
                else:
                    self._budget.failed(e, what)  # raises HaltedError once spent
            else:
                self._budget.succeeded()
                self._backoff.reset()
                return result
            if self._stop.wait(self._backoff.next_delay()):
                raise StopRequestedError

    def _close_source(self) -> None:
        if self._source_open:
            self._source_open = False
            self._source.close()

    def close(self) -> None:
        for close in (self._close_source, self._projection.close, self._dead_letters.close):
            try:
                close()
            except Exception:
                log.exception("error while closing")


def _next_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for m in messages:
        topic, partition, offset = where(m)
        offsets[topic, partition] = max(offsets.get((topic, partition), 0), offset + 1)
    return offsets


def _observe_hops(messages: Sequence[Message], received_at: float, applied_at: float) -> None:
    """The batch's hops (common.metrics.FRESHNESS_HOPS); a message's Kafka timestamp is when the
    relay produced it (CreateTime), absent from test fakes."""
    metrics.observe_hop("received_to_applied", applied_at - received_at, len(messages))
    metrics.observe_hop("applied_to_offsets", time.time() - applied_at, len(messages))
    for m in messages:
        timestamp = getattr(m, "timestamp", None)
        if timestamp is not None and (stamp := timestamp())[1] > 0:
            metrics.observe_hop("produced_to_received", received_at - stamp[1] / 1000)
