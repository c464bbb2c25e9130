"""Composition root of the scheduler: from settings and the adapters passed in (else built from
the environment), the digest service, its quarter-hourly cron and its health endpoint.
`python -m scheduler` parses its arguments and runs what `bootstrap` builds; tests build the
same with their own database, store, read side or clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from event_store.application import TodoStore, store_env
from projector.settings import ProjectorSettings
from runtime.health import serve_health
from runtime.settings import DatabaseSettings, HealthSettings, RelaySettings, kafka_settings
from scheduler.local_midnight import tick_trigger
from scheduler.read_side import PipelineProgress, ReadSideProgress
from scheduler.service import Clock, DigestService, DigestStore, utc_now
from scheduler.settings import SchedulerSettings

log = logging.getLogger("scheduler")

DAILY_JOB_ID = "daily-digest"
CATCH_UP_JOB_ID = "daily-digest-catch-up"


def build_trigger(settings: SchedulerSettings) -> CronTrigger:
    """Every quarter hour: each tick records the digests of the zones whose midnight passed."""
    return tick_trigger()


def configure_jobs(
    scheduler: BaseScheduler, settings: SchedulerSettings, job: Callable[[], Any]
) -> None:
    """The quarter-hourly job, plus (if enabled) a one-off run now that catches up a midnight
    missed while the scheduler was down (the first tick would too, up to 15 minutes later)."""
    scheduler.add_job(
        job,
        build_trigger(settings),
        id=DAILY_JOB_ID,
        name="daily digests of the zones whose midnight passed",
        misfire_grace_time=settings.SCHEDULER_MISFIRE_GRACE_SECONDS,
        coalesce=True,  # several missed firings run once
        max_instances=1,
        replace_existing=True,
    )
    if settings.SCHEDULER_CATCH_UP:
        # No trigger: run once, as soon as the scheduler starts. It does nothing for the zones
        # whose current local date already completed (see DigestService.run_due).
        scheduler.add_job(job, id=CATCH_UP_JOB_ID, name="daily digest catch-up")


@dataclass(frozen=True)
class SchedulerProcess:
    """What `python -m scheduler` runs: the digest service (also what `run --date` uses), its
    cron with the jobs configured but not started, and its health endpoint (ready = the cron
    is running)."""

    settings: SchedulerSettings
    service: DigestService
    cron: BaseScheduler
    health: HealthSettings

    def ready(self) -> bool:
        return bool(self.cron.running)

    def serve(self, stopping: threading.Event) -> None:
        """Run the jobs and answer /health, /ready and /metrics until `stopping` is set."""
        self.cron.start()
        server = serve_health(
            self.health.HEALTH_HOST, self.health.SCHEDULER_HEALTH_PORT, self.ready, "scheduler"
        )
        log.info(
            "scheduler started",
            extra={
                "timezone": self.settings.SCHEDULER_TIMEZONE,
                "next_run": str(build_trigger(self.settings).get_next_fire_time(None, utc_now())),
                "catch_up": self.settings.SCHEDULER_CATCH_UP,
            },
        )
        stopping.wait()
        log.info("scheduler stopping")
        self.service.stop()  # a running batch stops feeding work; it is retried on the next start
        self.cron.shutdown(wait=True)
        if server is not None:
            server.shutdown()


@contextmanager
def bootstrap(
    settings: SchedulerSettings,
    db: DatabaseSettings,
    health: HealthSettings,
    *,
    store: DigestStore | None = None,
    read_side: ReadSideProgress | None = None,
    clock: Clock = utc_now,
) -> Iterator[SchedulerProcess]:
    """The scheduler's parts. Without `store`: the event store on `db` (closed on exit). Without
    `read_side`: the real pipeline's progress (relay checkpoint, projector offsets in Kafka, as
    their settings in the environment name them)."""
    with ExitStack() as owned:
        if store is None:
            todo_store = TodoStore(env=store_env(db))
            owned.callback(todo_store.close)
            store = todo_store
        if read_side is None:
            read_side = PipelineProgress(
                db,
                kafka_settings(),
                ProjectorSettings().PROJECTOR_GROUP_ID,
                RelaySettings().RELAY_NAME,
            )
        service = DigestService(settings, db, store, read_side, clock=clock)
        cron = BackgroundScheduler(timezone=settings.timezone)
        configure_jobs(cron, settings, service.run_due)
        yield SchedulerProcess(settings, service, cron, health)
