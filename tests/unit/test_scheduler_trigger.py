"""The schedule, not the clock: a tick every quarter hour, and at each tick the zones whose local
midnight has passed (each user's digest for local date D right after 00:00 D in their zone)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from pydantic import ValidationError

from runtime.settings import DatabaseSettings
from scheduler.bootstrap import CATCH_UP_JOB_ID, DAILY_JOB_ID, build_trigger, configure_jobs
from scheduler.local_midnight import local_date, local_dates
from scheduler.service import DigestService
from scheduler.settings import SchedulerSettings


def first_tick_of_local_date(zone: str, day: date, search_from: datetime) -> datetime:
    """The first quarter-hour tick (as the trigger fires them) at which `zone` is on `day`."""
    trigger = build_trigger(SchedulerSettings())
    previous: datetime | None = None
    now = search_from
    for _ in range(4 * 24 * 3):
        tick: datetime = trigger.get_next_fire_time(previous, now)
        if local_date(tick, zone) == day:
            return tick.astimezone(UTC)
        previous = now = tick
    raise AssertionError(f"{zone} never reached {day}")


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc"),
    [
        ("UTC", date(2026, 12, 3), datetime(2026, 12, 3, 0, 0, tzinfo=UTC)),
        # +05:30 and +05:45: midnight on a half and a three-quarter hour of UTC.
        ("Asia/Kolkata", date(2026, 12, 3), datetime(2026, 12, 2, 18, 30, tzinfo=UTC)),
        ("Asia/Kathmandu", date(2026, 12, 3), datetime(2026, 12, 2, 18, 15, tzinfo=UTC)),
        # -08:00 in winter.
        ("America/Los_Angeles", date(2026, 12, 3), datetime(2026, 12, 3, 8, 0, tzinfo=UTC)),
        # The day after spring forward (2026-03-08): midnight is at -07:00 already.
        ("America/Los_Angeles", date(2026, 3, 9), datetime(2026, 3, 9, 7, 0, tzinfo=UTC)),
        # The spring-forward day itself (the jump is at 02:00, midnight still at -08:00).
        ("America/Los_Angeles", date(2026, 3, 8), datetime(2026, 3, 8, 8, 0, tzinfo=UTC)),
        # Fall back in Paris (2026-10-25 03:00 -> 02:00): the 26th starts at 00:00+01:00.
        ("Europe/Paris", date(2026, 10, 26), datetime(2026, 10, 25, 23, 0, tzinfo=UTC)),
        # Cuba's clocks jump from 00:00 to 01:00 on 2026-03-08: that day starts at 01:00-04:00.
        ("America/Havana", date(2026, 3, 8), datetime(2026, 3, 8, 5, 0, tzinfo=UTC)),
    ],
)
def test_a_zones_digest_is_due_at_the_first_tick_after_its_local_midnight(
    zone: str, day: date, expected_utc: datetime
) -> None:
    search_from = datetime.combine(day, datetime.min.time(), UTC) - timedelta(days=1)
    assert first_tick_of_local_date(zone, day, search_from) == expected_utc


def test_at_one_instant_the_zones_are_grouped_by_their_local_date() -> None:
    # 18:20 UTC on Dec 2: 00:05 in Kathmandu (+05:45), still 23:50 in Kolkata (+05:30).
    now = datetime(2026, 12, 2, 18, 20, tzinfo=UTC)
    zones = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/Los_Angeles", "Pacific/Kiritimati"]
    grouped = local_dates(now, zones)
    assert grouped[date(2026, 12, 2)] == ["America/Los_Angeles", "Asia/Kolkata", "UTC"]
    assert grouped[date(2026, 12, 3)] == ["Asia/Kathmandu", "Pacific/Kiritimati"]
    assert set(grouped) == {date(2026, 12, 2), date(2026, 12, 3)}


def test_the_trigger_ticks_every_quarter_hour_on_the_utc_clock() -> None:
    trigger = build_trigger(SchedulerSettings())
    now = datetime(2026, 3, 29, 0, 50, 7, tzinfo=UTC)  # Paris changes clocks at 01:00 UTC
    ticks = []
    previous = None
    for _ in range(5):
        tick = trigger.get_next_fire_time(previous, now)
        ticks.append(tick.strftime("%H:%M:%S"))
        previous = now = tick
    assert ticks == ["01:00:00", "01:15:00", "01:30:00", "01:45:00", "02:00:00"]


def jobs(settings: SchedulerSettings) -> dict[str, Any]:
    scheduler = BackgroundScheduler(timezone=UTC)
    configure_jobs(scheduler, settings, lambda: None)
    return {job.id: job for job in scheduler.get_jobs()}


def test_the_tick_job_coalesces_missed_runs_and_tolerates_a_late_start() -> None:
    settings = SchedulerSettings(SCHEDULER_MISFIRE_GRACE_SECONDS=1800)

    daily = jobs(settings)[DAILY_JOB_ID]

    assert isinstance(daily.trigger, CronTrigger)
    assert str(daily.trigger) == "cron[minute='*/15', second='0']"
    assert (daily.misfire_grace_time, daily.coalesce, daily.max_instances) == (1800, True, 1)


def test_a_catch_up_run_is_scheduled_for_start_up_unless_disabled() -> None:
    enabled = jobs(SchedulerSettings())
    disabled = jobs(SchedulerSettings(SCHEDULER_CATCH_UP=False))

    assert isinstance(enabled[CATCH_UP_JOB_ID].trigger, DateTrigger)
    assert set(disabled) == {DAILY_JOB_ID}


def test_the_default_date_of_a_manual_run_is_today_in_the_configured_timezone() -> None:
    just_after_paris_midnight = datetime(2026, 11, 22, 23, 0, 5, tzinfo=UTC)

    def service(timezone: str) -> DigestService:
        settings = SchedulerSettings(SCHEDULER_TIMEZONE=timezone)
        return DigestService(
            settings, DatabaseSettings(), recorder=None, read_side=None,  # type: ignore[arg-type]
            clock=lambda: just_after_paris_midnight,
        )  # fmt: skip

    assert service("Europe/Paris").today() == date(2026, 11, 23)
    assert service("UTC").today() == date(2026, 11, 22)


def test_an_unknown_timezone_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="unknown timezone"):
        SchedulerSettings(SCHEDULER_TIMEZONE="Mars/Olympus_Mons")
