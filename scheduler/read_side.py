"""Is the read side fresh enough for a digest? The batch reads the read tables, which lag the store
by the relay → Kafka → projector hop; without a check, a task created at 23:59:59 could be missing
from that night's digest.

So a batch first takes a high-water mark, the store's head position when it starts (at 00:00 that
is every event recorded before midnight; for a past date it is more than enough), and waits until
the read side has applied every event up to it. The wait is bounded: the digest of a read side that
is stuck (Kafka down for an hour) is still better late-but-stale than never, so the batch then goes
ahead and logs a warning saying how far behind it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from projector.status import collect_status
from runtime.settings import DatabaseSettings, KafkaSettings

log = logging.getLogger(__name__)


class ReadSideProgress(Protocol):
    def applied_position(self) -> int:
        """Highest store position up to which every published event is in the read tables."""


class PipelineProgress:
    """The real pipeline's progress, as `python -m projector status` computes it: the relay's
    checkpoint, lowered to the applied position of any Kafka partition still behind."""

    def __init__(
        self, db: DatabaseSettings, kafka: KafkaSettings, group_id: str, relay_name: str
    ) -> None:
        self._db = db
        self._kafka = kafka
        self._group_id = group_id
        self._relay_name = relay_name

    def applied_position(self) -> int:
        status = collect_status(0, self._db, self._kafka, self._group_id, self._relay_name)
        # Without Kafka's end offsets nothing proves a partition is caught up: not fresh yet.
        return status.projector_position if status.projector_position_exact else 0


def wait_for_read_side(
    progress: ReadSideProgress,
    mark: int,
    *,
    timeout: float,
    wait: Callable[[float], bool],
    poll_interval: float = 0.5,
    clock: Callable[[], float],
) -> bool:
    """Wait until the read side has applied every event up to `mark`; False if it has not within
    `timeout` seconds (logged as a warning) or when `wait` (an Event.wait: True = stop) says so."""
    deadline = clock() + timeout
    applied = 0
    while True:
        try:
            applied = progress.applied_position()
        except Exception as e:  # the database or Kafka down: keep waiting, within the bound
            log.info("read side progress unknown, still waiting", extra={"error": str(e)})
        if applied >= mark:
            return True
        remaining = deadline - clock()
        if remaining <= 0:
            break
        if wait(min(poll_interval, remaining)):
            return False  # stopping: the batch is abandoned anyway
    log.warning(
        "digest batch runs on a read side that lags the store",
        extra={"high_water_mark": mark, "read_side_position": applied, "waited_seconds": timeout},
    )
    return False
