"""The projector's batch handler on the shared consumer loop (consuming.loop): a polled batch is
applied to the read tables in one transaction, with its poison and what waits behind it parked in
that same transaction (projector.sink).

- An event type this code does not know is skipped by the loop's decoder, not poison.
- A batch the database or a handler refuses as data (POISON) is re-applied one event at a time to
  find the culprit, which is parked with its reason; every other aggregate keeps flowing.
- TRANSIENT failures retry the same transaction in place, forever; a BUG within the budget, then
  the projector halts (Retries). Nothing is committed meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from consuming.batch import Batch, BatchResult, Delivered
from consuming.loop import MessageRefusedError, Retries
from consuming.poison import describe
from contracts.dead_letters import DeadLetter, LetterKind
from runtime import metrics, tracing

log = logging.getLogger(__name__)


class Projection(Protocol):
    def apply(self, batch: Sequence[Delivered], poison: Sequence[DeadLetter] = ()) -> BatchResult:
        """Apply `batch` and park `poison` (and what waits behind it) atomically, or raise."""

    def close(self) -> None: ...


class ProjectorHandler:
    def __init__(self, projection: Projection, consumer: str = "projector") -> None:
        self._projection = projection
        self._consumer = consumer
        metrics.register(*metrics.PROJECTOR)

    def handle(self, batch: Batch, retries: Retries) -> BatchResult:
        decoded = batch.events
        result = self._apply(decoded, batch.poison, retries)
        # One span per event, child of its command's; logged (one line each) at DEBUG.
        if log.isEnabledFor(logging.DEBUG) or tracing.exporting():
            for d in decoded:
                with tracing.span("project", parent=tracing.from_kafka_headers(d.headers) or b""):
                    log.debug("event handled", extra={"event_id": str(d.event.event_id)})
        return result

    def _apply(
        self, decoded: list[Delivered], poison: list[DeadLetter], retries: Retries
    ) -> BatchResult:
        try:
            return self._apply_batch(decoded, poison, retries)
        except MessageRefusedError as e:
            if len(decoded) + len(poison) == 1 and decoded:
                return self._park(decoded[0], e, retries)
            log.warning("batch refused; applying its events one by one", extra={"error": str(e)})
        result = BatchResult()
        items: list[Delivered | DeadLetter] = sorted([*decoded, *poison], key=lambda i: i.where)
        for item in items:
            if isinstance(item, DeadLetter):
                result.add(self._apply_batch([], [item], retries))
                continue
            try:
                result.add(self._apply_batch([item], [], retries))
            except MessageRefusedError as e:
                result.add(self._park(item, e, retries))
        return result

    def _park(
        self, delivered: Delivered, error: MessageRefusedError, retries: Retries
    ) -> BatchResult:
        reason = f"unappliable: {describe(error.__cause__ or error)}"
        letter = delivered.letter(self._consumer, "projector", reason, LetterKind.POISON)
        return self._apply_batch([], [letter], retries)

    def _apply_batch(
        self, batch: Sequence[Delivered], poison: Sequence[DeadLetter], retries: Retries
    ) -> BatchResult:
        return retries.call(lambda: self._projection.apply(batch, poison), "apply")

    def close(self) -> None:
        self._projection.close()
