"""The consumer loop, once for the projector and the mailer: poll a batch, decode it
(consuming.batch), hand it to the process's handler, publish its dead letters, commit offsets.

The failure rules are the shared poison policy (consuming.poison), applied here through Retries:
- POISON (undecodable, breaks the contract, refused as data): parked by the handler with its
  reason (consuming.parking), later messages of its aggregate parked behind it; published on
  events.dlq (one envelope, contracts.dead_letters) before the offsets are committed.
- TRANSIENT (PostgreSQL, Kafka, SMTP unavailable): retried with capped backoff, forever; either in
  place (Retries.call: the projector's transaction, the dead-letter send) or by handing back the
  unfinished rest of the batch (BatchResult.done: the mailer), which is read again after a pause.
- BUG (anything else): retried CONSUMER_BUG_RETRIES times, then the consumer halts: it takes no
  more messages, commits nothing more and /ready answers 503 with the reason.
Offsets are committed only once what they cover is durable; a crash re-delivers the uncommitted
rest, which the handlers' idempotence turns into no-ops (events.dlq is at-least-once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from consuming.batch import Batch, BatchResult, Decoder, Delivered, first_offsets, next_offsets
from consuming.metrics import count_dead_letters, observe_consumer
from consuming.poison import Backoff, BugBudget, HaltedError, Kind, classify, describe
from consuming.source import Message, MessageSource
from contracts.dead_letters import DeadLetter
from runtime import metrics
from runtime.health import Heartbeat
from runtime.settings import ConsumerSettings

log = logging.getLogger(__name__)


class StopRequestedError(Exception):
    """stop() was called while waiting to retry."""


class MessageRefusedError(Exception):
    """What Retries.call raises for a POISON failure (the original exception is the cause)."""


class Retries:
    """The poison policy's retries for one consumer: TRANSIENT forever with capped backoff, a BUG
    within the budget (then HaltedError), POISON not at all."""

    def __init__(
        self, policy: ConsumerSettings, stop: threading.Event, on_halt: Callable[[str], None]
    ) -> None:
        self._backoff = Backoff.from_settings(policy)
        self._budget = BugBudget(policy.CONSUMER_BUG_RETRIES, on_halt)
        self._stop = stop

    def call[T](self, action: Callable[[], T], what: str) -> T:
        """`action()`, retried in place until it succeeds; raises MessageRefusedError (POISON),
        HaltedError (a bug outlasted its retries) or StopRequestedError."""
        while True:
            try:
                result = action()
            except Exception as e:
                kind = classify(e)
                if kind is Kind.POISON:
                    raise MessageRefusedError(describe(e)) from e
                self.failed(e, what)
            else:
                self.succeeded()
                self._backoff.reset()
                return result
            if self._stop.wait(self._backoff.next_delay()):
                raise StopRequestedError

    def failed(self, e: Exception, what: str) -> None:
        """A failure that is not the message's fault: TRANSIENT is logged (the caller retries); a
        BUG spends the budget (HaltedError once spent)."""
        if classify(e) is Kind.BUG:
            self._budget.failed(e, what)
        else:
            log.warning(f"{what} failed, retrying", extra={"error": describe(e)})

    def succeeded(self) -> None:
        self._budget.succeeded()


class BatchHandler(Protocol):
    def handle(self, batch: Batch, retries: Retries) -> BatchResult:
        """Handle the batch's items in order; park poison (and what waits behind it) durably."""

    def close(self) -> None: ...


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Durable when it returns; raises (TransientError) otherwise."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class LoopSettings:
    service: str  # "projector" | "mailer": log lines, metrics labels, dlq.service
    consumer: str  # the consumer group (dlq.consumer)
    wanted: frozenset[str] | None = None  # event types handled (None: every known type)
    batch_size: int = 500
    poll_timeout: float = 0.5
    rewind_pause: float = 0.5  # before reading again what a batch left unfinished
    freshness_hops: bool = False  # observe event_hop_seconds (the read side's freshness)


@dataclass
class Counters:
    """What one consumer has done since it started (logged under `counters` when it stops)."""

    batches: int = 0
    messages: int = 0
    handled: int = 0  # applied to the read tables / emailed
    duplicates: int = 0
    gaps: int = 0
    dead_letters: int = 0
    skipped: int = 0  # not this consumer's business: another type, or an unknown one


class ConsumerLoop:
    def __init__(
        self,
        source: MessageSource,
        handler: BatchHandler,
        dead_letters: DeadLetterSink,
        settings: LoopSettings,
        policy: ConsumerSettings,
        *,
        stop: threading.Event | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._source = source
        self._handler = handler
        self._dead_letters = dead_letters
        self._settings = settings
        self._stop = stop or threading.Event()
        self.heartbeat = heartbeat or Heartbeat()
        self._retries = Retries(policy, self._stop, lambda reason: self.heartbeat.halt(reason))
        self._decoder = Decoder(settings.consumer, settings.service, settings.wanted)
        self._source_open = True
        self._closed = False
        self.counters = Counters()

    def stop(self) -> None:
        """Thread- and signal-safe: finish the current batch, commit what is done, return."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Until stop(); then closes everything."""
        service = self._settings.service
        log.info(f"{service} started", extra={"consumer": self._settings.consumer})
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
            self.close()
            log.info(f"{service} stopped", extra={"counters": vars(self.counters)})

    def step(self) -> int:
        """Handle one polled batch end to end; returns how many messages it polled."""
        self.heartbeat.beat()
        s = self._settings
        messages = self._source.poll(s.batch_size, s.poll_timeout)
        if not messages:
            return 0
        received_at = time.time()
        batch = self._decoder.decode(messages)
        result = self._handler.handle(batch, self._retries)
        handled_at = time.time()
        if result.parked:
            self._publish(result.parked)
        done = batch.items if result.done is None else batch.items[: result.done]
        committed = next_offsets(done)
        if committed:
            self._source.commit(committed)
        if s.freshness_hops:
            _observe_hops(messages, received_at, handled_at)
        count_dead_letters(s.service, ((p.kind.value, p.reason) for p in result.parked))
        if committed:
            observe_consumer(
                s.service,
                committed,
                (
                    (d.where[:2], d.event.position, d.event.occurred_at)
                    for d in done
                    if isinstance(d, Delivered)
                ),
                getattr(self._source, "high_watermark", None),  # KafkaSource has it, fakes not
            )
        self._count(len(messages), batch.skipped, result)
        if rewind := first_offsets(batch.items[len(done) :]):
            self._source.seek(rewind)
            self._stop.wait(s.rewind_pause)
        return len(messages)

    def _publish(self, parked: list[DeadLetter]) -> None:
        self._retries.call(lambda: self._dead_letters.send(parked), "dead-letter send")
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

    def _count(self, messages: int, skipped: int, result: BatchResult) -> None:
        c = self.counters
        c.batches += 1
        c.messages += messages
        c.skipped += skipped
        c.handled += result.handled
        c.duplicates += result.duplicates
        c.gaps += result.gaps
        c.dead_letters += len(result.parked)

    def _close_source(self) -> None:
        if self._source_open:
            self._source_open = False
            self._source.close()

    def close(self) -> None:
        """Idempotent: run() closes on its way out, and a caller may close again."""
        if self._closed:
            return
        self._closed = True
        for close in (self._close_source, self._handler.close, self._dead_letters.close):
            try:
                close()
            except Exception:
                log.exception("error while closing")


def _observe_hops(messages: Sequence[Message], received_at: float, handled_at: float) -> None:
    """The batch's hops (runtime.metrics.FRESHNESS_HOPS); a message's Kafka timestamp is when the
    relay produced it (CreateTime), absent from test fakes."""
    metrics.observe_hop("received_to_applied", handled_at - received_at, len(messages))
    metrics.observe_hop("applied_to_offsets", time.time() - handled_at, len(messages))
    for m in messages:
        timestamp = getattr(m, "timestamp", None)
        if timestamp is not None and (stamp := timestamp())[1] > 0:
            metrics.observe_hop("produced_to_received", received_at - stamp[1] / 1000)
