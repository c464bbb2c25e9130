"""Digest scheduler processes.

python -m scheduler                     # serve: batch at 00:00 (SCHEDULER_TIMEZONE), catch-up
python -m scheduler run --date 2026-11-23   # run the batch now, with progress and a summary
python -m scheduler next                # print the next fire times
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from tqdm import tqdm

from common.health import serve_health
from common.logging import configure_logging
from common.process import stop_on_signals
from common.settings import (
    HealthSettings,
    RelaySettings,
    database_settings,
    kafka_settings,
    runtime_settings,
)
from event_store.application import TodoStore, store_env
from projector.settings import ProjectorSettings
from scheduler.batch import BatchFailedError
from scheduler.read_side import PipelineProgress
from scheduler.service import DigestService, build_trigger, configure_jobs
from scheduler.settings import SchedulerSettings

log = logging.getLogger("scheduler")


@contextmanager
def _service(settings: SchedulerSettings) -> Iterator[DigestService]:
    db = database_settings()
    store = TodoStore(env=store_env(db))
    try:
        read_side = PipelineProgress(
            db, kafka_settings(), ProjectorSettings().PROJECTOR_GROUP_ID, RelaySettings().RELAY_NAME
        )
        yield DigestService(settings, db, store, read_side)
    finally:
        store.close()


def serve(settings: SchedulerSettings) -> int:
    stopping = threading.Event()

    stop_on_signals(stopping.set)
    with _service(settings) as service:
        scheduler = BackgroundScheduler(timezone=settings.timezone)
        configure_jobs(scheduler, settings, service.run_due)
        scheduler.start()
        health = HealthSettings()
        serve_health(
            health.HEALTH_HOST,
            health.SCHEDULER_HEALTH_PORT,
            lambda: bool(scheduler.running),
            "scheduler",
        )
        log.info(
            "scheduler started",
            extra={
                "timezone": settings.SCHEDULER_TIMEZONE,
                "next_run": str(build_trigger(settings).get_next_fire_time(None, _now())),
                "catch_up": settings.SCHEDULER_CATCH_UP,
            },
        )
        stopping.wait()
        log.info("scheduler stopping")
        service.stop()  # a running batch stops feeding work; it is retried on the next start
        scheduler.shutdown(wait=True)
    return 0


def run_once(settings: SchedulerSettings, digest_date: date | None, show_progress: bool) -> int:
    with _service(settings) as service:
        day = digest_date or service.today()
        bar: tqdm[Any] | None = None

        def on_start(users: int) -> None:
            nonlocal bar
            bar = tqdm(
                total=users,
                unit="user",
                desc=f"digests {day}",
                file=sys.stderr,
                disable=not show_progress,
                mininterval=0.5,
            )

        def progress(n: int) -> None:
            if bar is not None:
                bar.update(n)

        try:
            summary = service.run_date(
                day, skip_if_completed=False, progress=progress, on_start=on_start
            )
        except BatchFailedError as e:
            if bar is not None:
                bar.close()
            print(f"{e.summary.line()}\nFAILED: {e.__cause__!r}", file=sys.stderr)
            return 1
        if bar is not None:
            bar.close()
        assert summary is not None  # skip_if_completed=False always runs
        print(summary.line())
        return 0


def print_next(settings: SchedulerSettings, count: int) -> int:
    trigger = build_trigger(settings)
    previous = None
    now = _now()
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        print(fire.isoformat())
        previous, now = fire, fire
    return 0


def _now() -> datetime:
    return datetime.now(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scheduler", description="Daily digest scheduler (default: serve)"
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the batch every day at 00:00, catch up a missed run")
    run = sub.add_parser("run", help="run the batch now for one date (idempotent)")
    run.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        help="digest date YYYY-MM-DD (default: today in SCHEDULER_TIMEZONE)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    nxt = sub.add_parser("next", help="print the next fire times of the 00:00 trigger")
    nxt.add_argument("--count", type=int, default=3)
    args = parser.parse_args(argv)

    configure_logging("scheduler", runtime_settings().LOG_LEVEL)
    settings = SchedulerSettings()
    if args.command == "run":
        return run_once(settings, args.date, show_progress=not args.no_progress)
    if args.command == "next":
        return print_next(settings, args.count)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
