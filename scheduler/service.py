"""The long-running scheduler: a tick every quarter hour that records the digests of the zones
whose local midnight has passed (scheduler/local_midnight.py), catch-up on start, and retries of
a failed batch until it completes (or the next tick takes over)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from time import monotonic
from typing import Protocol

from runtime import metrics, tracing
from runtime.settings import DatabaseSettings
from scheduler.batch import BatchSummary, DigestBatch, DigestRecorder, Progress, ReadTables
from scheduler.local_midnight import TICK_MINUTES, local_dates
from scheduler.read_side import ReadSideProgress, wait_for_read_side
from scheduler.runs import EVERY_ZONE, locked_run
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class DigestStore(DigestRecorder, Protocol):
    """The store as the service uses it (TodoStore satisfies it)."""

    def head_position(self) -> int:
        """The store's last position: a batch's high-water mark for the read side."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class DigestService:
    """The digest batches: of one date now (run_date), or of every zone as it passes midnight
    (run_due, each tick)."""

    settings: SchedulerSettings
    db: DatabaseSettings
    recorder: DigestStore
    read_side: ReadSideProgress
    clock: Clock = field(default=utc_now, kw_only=True)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        metrics.register(*metrics.SCHEDULER)

    def today(self) -> date:
        """The date a batch run now is for: today in the scheduler's timezone."""
        return self.clock().astimezone(self.settings.timezone).date()

    def stop(self) -> None:
        self._stop.set()

    def run_date(
        self,
        digest_date: date,
        *,
        skip_if_completed: bool,
        progress: Progress | None = None,
        on_start: Callable[[int], None] | None = None,
        zones: Sequence[str] | None = None,
    ) -> BatchSummary | None:
        """Run the batch for local date `digest_date` under the date's lock, for every user or
        those of `zones`; None if skipped as completed (every zone of it, if given).

        `on_start(user_count)` is called once the lock is held (the CLI sizes its progress bar).
        Reading waits (bounded) until the read side has applied what the store held at the start.
        """
        # The batch is a trace of its own: its digest events (and so their emails) carry it.
        with tracing.span("digest batch", parent=b"", digest_date=str(digest_date)):
            return self._run_date(digest_date, skip_if_completed, progress, on_start, zones)

    def _run_date(
        self,
        digest_date: date,
        skip_if_completed: bool,
        progress: Progress | None,
        on_start: Callable[[int], None] | None,
        zones: Sequence[str] | None,
    ) -> BatchSummary | None:
        started = monotonic()
        high_water_mark = self.recorder.head_position()
        with locked_run(self.db.conninfo, digest_date) as ledger:
            scope = [EVERY_ZONE] if zones is None else list(zones)
            if skip_if_completed:
                completed = ledger.completed_zones(scope)
                scope = [z for z in scope if z not in completed]
                if not scope:
                    log.info(
                        "digest batch already completed", extra={"digest_date": str(digest_date)}
                    )
                    return None
            source = self._source(None if zones is None else scope)
            ledger.mark_started(scope)
            self._await_read_side(high_water_mark)
            if on_start:
                on_start(source.count_users())
            log.info(
                "digest batch started", extra={"digest_date": str(digest_date), "zones": scope}
            )
            batch = DigestBatch(source, self.recorder)
            summary = batch.run(digest_date, progress, should_stop=self._stop.is_set)
            ledger.mark_completed(summary, scope)
        metrics.DIGEST_BATCH_DURATION.observe(monotonic() - started)
        metrics.DIGEST_BATCH_SIZE.observe(summary.users)
        log.info("digest batch completed", extra=summary.as_log())
        return summary

    def _await_read_side(self, mark: int) -> None:
        timeout = self.settings.SCHEDULER_READ_SIDE_WAIT_SECONDS
        if timeout <= 0 or mark <= 0:
            return
        started = monotonic()
        fresh = wait_for_read_side(
            self.read_side, mark, timeout=timeout, wait=self._stop.wait, clock=monotonic
        )
        if fresh:
            log.info(
                "read side caught up with the store",
                extra={"high_water_mark": mark, "waited_seconds": monotonic() - started},
            )

    def _source(self, zones: Sequence[str] | None = None) -> ReadTables:
        return ReadTables(
            self.db.conninfo,
            page_size=self.settings.SCHEDULER_PAGE_SIZE,
            max_titles=self.settings.SCHEDULER_MAX_UNDONE_TITLES,
            zones=zones,
        )

    def run_due(self) -> BatchSummary | None:
        """The scheduled job (every quarter hour): for every timezone in use, the batch of its
        current local date unless already completed, i.e. right after each zone's midnight.
        A failure is retried until it completes, the service stops, or the next tick is due
        (which supersedes it). None when nothing was due; else the counts of all batches run."""
        deadline = monotonic() + TICK_MINUTES * 60
        while not self._stop.is_set():
            try:
                return self._tick(self.clock())
            except Exception:
                log.exception(
                    "digest batch failed; will retry",
                    extra={"retry_in_seconds": self.settings.SCHEDULER_RETRY_SECONDS},
                )
            if self._stop.wait(self.settings.SCHEDULER_RETRY_SECONDS):
                break
            if monotonic() >= deadline:
                log.error("giving up this tick's digest batches: the next tick retries them")
                break
        return None

    def _tick(self, now: datetime) -> BatchSummary | None:
        total: BatchSummary | None = None
        due = local_dates(now, self._source().enabled_timezones())
        for digest_date, zones in sorted(due.items()):
            summary = self.run_date(digest_date, skip_if_completed=True, zones=zones)
            if summary is not None:
                total = summary if total is None else total.merged(summary)
        return total
