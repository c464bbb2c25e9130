"""The long-running scheduler: a cron trigger at 00:00 in SCHEDULER_TIMEZONE, catch-up on start,
and retries of a failed batch until it completes (or the day is over)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from common import metrics, tracing
from common.settings import DatabaseSettings
from scheduler.batch import BatchSummary, DigestBatch, DigestRecorder, Progress, ReadTables
from scheduler.read_side import ReadSideProgress, wait_for_read_side
from scheduler.runs import locked_run
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class DigestStore(DigestRecorder, Protocol):
    """The store as the service uses it (TodoStore satisfies it)."""

    def head_position(self) -> int:
        """The store's last position: a batch's high-water mark for the read side."""
        ...


DAILY_JOB_ID = "daily-digest"
CATCH_UP_JOB_ID = "daily-digest-catch-up"


class MidnightTrigger(CronTrigger):  # type: ignore[misc]  # untyped base
    """`CronTrigger(hour=0, minute=0, second=0)` computed correctly across DST changes.

    APScheduler 3.11's CronTrigger skips the local midnight that follows a spring-forward change
    (e.g. from 2026-03-29 00:00 Europe/Paris it answers 2026-03-31, not 03-30; upstream
    agronholm/apscheduler#606). A skipped midnight is a skipped digest, so the next fire time is
    computed here: the first instant of the next local day (if a zone's midnight does not exist
    because its clocks jump at 00:00, that is 01:00).
    """

    def __init__(self, timezone: ZoneInfo) -> None:
        super().__init__(hour=0, minute=0, second=0, timezone=timezone)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # Same start rule as CronTrigger: resume right after the previous fire (a missed firing
        # is then seen, and handled by misfire_grace_time/coalesce), else from now.
        if previous_fire_time is not None:
            start = min(now, previous_fire_time + timedelta(microseconds=1))
            if start == previous_fire_time:
                start += timedelta(microseconds=1)
        else:
            start = now
        zone: ZoneInfo = self.timezone
        day = start.astimezone(zone).date()
        fire = _first_instant(day, zone)
        if fire < start:
            fire = _first_instant(day + timedelta(days=1), zone)
        return fire


def _first_instant(day: date, zone: ZoneInfo) -> datetime:
    """Local 00:00 of `day`; where that does not exist (clocks jump at midnight), the wall time
    after the jump, normalised (fold=0 of a missing time maps past the gap)."""
    local = datetime.combine(day, time(0), tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone)


def build_trigger(settings: SchedulerSettings) -> CronTrigger:
    """Every day at 00:00:00 in the configured timezone."""
    return MidnightTrigger(settings.timezone)


def configure_jobs(
    scheduler: BaseScheduler, settings: SchedulerSettings, job: Callable[[], Any]
) -> None:
    """The 00:00 job, plus (if enabled) a one-off run now that catches up a missed 00:00."""
    scheduler.add_job(
        job,
        build_trigger(settings),
        id=DAILY_JOB_ID,
        name="daily digest batch",
        misfire_grace_time=settings.SCHEDULER_MISFIRE_GRACE_SECONDS,
        coalesce=True,  # several missed firings run once
        max_instances=1,
        replace_existing=True,
    )
    if settings.SCHEDULER_CATCH_UP:
        # No trigger: run once, as soon as the scheduler starts. It does nothing if today's batch
        # already completed (see DigestService.run_due).
        scheduler.add_job(job, id=CATCH_UP_JOB_ID, name="daily digest catch-up")


class DigestService:
    def __init__(
        self,
        settings: SchedulerSettings,
        db: DatabaseSettings,
        recorder: DigestStore,
        read_side: ReadSideProgress,
        *,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._db = db
        self._recorder = recorder
        self._read_side = read_side
        self._clock = clock
        self._stop = threading.Event()
        metrics.register(*metrics.SCHEDULER)

    def today(self) -> date:
        """The date a batch run now is for: today in the scheduler's timezone."""
        return self._clock().astimezone(self._settings.timezone).date()

    def stop(self) -> None:
        self._stop.set()

    def run_date(
        self,
        digest_date: date,
        *,
        skip_if_completed: bool,
        progress: Progress | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> BatchSummary | None:
        """Run the batch for `digest_date` under the date's lock; None if skipped as completed.

        `on_start(user_count)` is called once the lock is held (the CLI sizes its progress bar).
        Reading waits (bounded) until the read side has applied what the store held at the start.
        """
        # The batch is a trace of its own: its digest events (and so their emails) carry it.
        with tracing.span("digest batch", parent=b"", digest_date=str(digest_date)):
            return self._run_date(digest_date, skip_if_completed, progress, on_start)

    def _run_date(
        self,
        digest_date: date,
        skip_if_completed: bool,
        progress: Progress | None,
        on_start: Callable[[int], None] | None,
    ) -> BatchSummary | None:
        started = monotonic()
        high_water_mark = self._recorder.head_position()
        source = ReadTables(
            self._db.conninfo,
            page_size=self._settings.SCHEDULER_PAGE_SIZE,
            max_titles=self._settings.SCHEDULER_MAX_UNDONE_TITLES,
        )
        with locked_run(self._db.conninfo, digest_date) as ledger:
            if skip_if_completed and ledger.is_completed():
                log.info("digest batch already completed", extra={"digest_date": str(digest_date)})
                return None
            ledger.mark_started()
            self._await_read_side(high_water_mark)
            if on_start:
                on_start(source.count_users())
            log.info("digest batch started", extra={"digest_date": str(digest_date)})
            batch = DigestBatch(source, self._recorder)
            summary = batch.run(digest_date, progress, should_stop=self._stop.is_set)
            ledger.mark_completed(summary)
        metrics.DIGEST_BATCH_DURATION.observe(monotonic() - started)
        metrics.DIGEST_BATCH_SIZE.observe(summary.users)
        log.info("digest batch completed", extra=summary.as_log())
        return summary

    def _await_read_side(self, mark: int) -> None:
        timeout = self._settings.SCHEDULER_READ_SIDE_WAIT_SECONDS
        if timeout <= 0 or mark <= 0:
            return
        started = monotonic()
        fresh = wait_for_read_side(
            self._read_side, mark, timeout=timeout, wait=self._stop.wait, clock=monotonic
        )
        if fresh:
            log.info(
                "read side caught up with the store",
                extra={"high_water_mark": mark, "waited_seconds": monotonic() - started},
            )

    def run_due(self) -> BatchSummary | None:
        """The scheduled job: today's batch unless already completed, retried until it completes,
        the service stops, or the day is over (tomorrow's run supersedes it)."""
        digest_date = self.today()
        while not self._stop.is_set():
            try:
                return self.run_date(digest_date, skip_if_completed=True)
            except Exception:
                log.exception(
                    "digest batch failed; will retry",
                    extra={
                        "digest_date": str(digest_date),
                        "retry_in_seconds": self._settings.SCHEDULER_RETRY_SECONDS,
                    },
                )
            if self._stop.wait(self._settings.SCHEDULER_RETRY_SECONDS):
                break
            if self.today() != digest_date:
                log.error(
                    "giving up the digest batch: its day is over",
                    extra={"digest_date": str(digest_date)},
                )
                break
        return None
