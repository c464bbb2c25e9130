"""Digest scheduler processes.

python -m scheduler                     # serve: each zone's batch after its midnight, catch-up
python -m scheduler run --date 2026-11-23   # run the batch now, with progress and a summary
python -m scheduler next                # print the next ticks (every quarter hour)
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from datetime import date
from typing import Any

from tqdm import tqdm

from runtime.logging import configure_logging
from runtime.process import stop_on_signals
from runtime.settings import HealthSettings, database_settings, runtime_settings
from scheduler.batch import BatchFailedError
from scheduler.bootstrap import bootstrap, build_trigger
from scheduler.service import utc_now
from scheduler.settings import SchedulerSettings


def serve(settings: SchedulerSettings) -> int:
    stopping = threading.Event()
    stop_on_signals(stopping.set)
    with bootstrap(settings, database_settings(), HealthSettings()) as process:
        process.serve(stopping)
    return 0


def run_once(settings: SchedulerSettings, digest_date: date | None, show_progress: bool) -> int:
    with bootstrap(settings, database_settings(), HealthSettings()) as process:
        service = process.service
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
    now = utc_now()
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        print(fire.isoformat())
        previous, now = fire, fire
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scheduler", description="Daily digest scheduler (default: serve)"
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="every quarter hour, the batch of each zone whose midnight passed")
    run = sub.add_parser(
        "run", help="run the batch now: every user's digest of their local date (idempotent)"
    )
    run.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        help="digest date YYYY-MM-DD (default: today in SCHEDULER_TIMEZONE)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    nxt = sub.add_parser("next", help="print the next ticks of the quarter-hour trigger")
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
