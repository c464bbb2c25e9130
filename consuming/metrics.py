"""What the consumer loop records in the metrics of runtime.metrics after each committed batch:
per partition the committed offset, the last applied event's store position and the lag, and the
dead letters it parked, counted by a class of their reason."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from consuming.batch import Partition
from runtime.metrics import (
    CONSUMER_LAG_EVENTS,
    CONSUMER_LAG_SECONDS,
    CONSUMER_OFFSET,
    CONSUMER_POSITION,
    DEAD_LETTERS,
)

_REASON_CLASS = re.compile(r"[A-Za-z][A-Za-z _-]{0,39}")


def observe_consumer(
    service: str,
    committed: Mapping[Partition, int],
    last_events: Iterable[tuple[Partition, int, datetime]],
    high_watermark: Callable[[str, int], int | None] | None,
) -> None:
    """After a committed batch: per partition the next offset committed, and the store position
    and occurred_at of the last event applied (`last_events`, in order; later ones win)."""
    last = {where: (position, occurred_at) for where, position, occurred_at in last_events}
    now = time.time()
    for (topic, partition), next_offset in committed.items():
        label = str(partition)
        CONSUMER_OFFSET.labels(service, label).set(next_offset)
        high = high_watermark(topic, partition) if high_watermark else None
        behind = None if high is None else max(high - next_offset, 0)
        if behind is not None:
            CONSUMER_LAG_EVENTS.labels(service, label).set(behind)
        event = last.get((topic, partition))
        if event is not None:
            CONSUMER_POSITION.labels(service, label).set(event[0])
        if behind == 0:
            CONSUMER_LAG_SECONDS.labels(service, label).set(0.0)
        elif event is not None:
            CONSUMER_LAG_SECONDS.labels(service, label).set(max(now - event[1].timestamp(), 0.0))


def count_dead_letters(service: str, letters: Iterable[tuple[str, str]]) -> None:
    """`letters`: (kind, reason) of each parked message. The reason's class is its text before the
    first ':' ("undecodable", "unappliable", ...) if that is a few plain words, else "other"; a
    message parked behind another is "behind poison". Free text and ids never become a label."""
    for kind, reason in letters:
        if kind != "poison":
            reason_class = "behind poison"
        else:
            reason_class = reason.split(":", 1)[0].strip()
            if not _REASON_CLASS.fullmatch(reason_class):
                reason_class = "other"
        DEAD_LETTERS.labels(service, kind, reason_class).inc()
