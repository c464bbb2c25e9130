"""The schedule, not the clock: the trigger fires at 00:00 in the configured timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from pydantic import ValidationError

from common.settings import DatabaseSettings
from scheduler.service import (
    CATCH_UP_JOB_ID,
    DAILY_JOB_ID,
    DigestService,
    build_trigger,
    configure_jobs,
)
from scheduler.settings import SchedulerSettings

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("timezone", "now", "expected"),
    [
        ("UTC", datetime(2026, 11, 23, 15, 0, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)),
        ("UTC", datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)),
        # 23:30 in Paris is 22:30 UTC: the next run is Paris midnight, i.e. 23:00 UTC.
        (
            "Europe/Paris",
            datetime(2026, 11, 23, 22, 30, tzinfo=UTC),
            datetime(2026, 11, 24, tzinfo=PARIS),
        ),
        # Already past Paris midnight although it is still the 23rd in UTC.
        (
            "Europe/Paris",
            datetime(2026, 11, 23, 23, 30, tzinfo=UTC),
            datetime(2026, 11, 25, tzinfo=PARIS),
        ),
        # Summer time (UTC+2).
        (
            "Europe/Paris",
            datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
            datetime(2026, 7, 2, tzinfo=PARIS),
        ),
    ],
)
def test_the_trigger_fires_next_at_the_coming_midnight_of_the_configured_timezone(
    timezone: str, now: datetime, expected: datetime
) -> None:
    trigger = build_trigger(SchedulerSettings(SCHEDULER_TIMEZONE=timezone))

    fire = trigger.get_next_fire_time(None, now)

    assert fire == expected
    assert fire.astimezone(ZoneInfo(timezone)).time().isoformat() == "00:00:00"


def fire_times(timezone: str, start: datetime, count: int = 4) -> list[str]:
    """Consecutive fire times, as the scheduler asks for them (previous fire time, now)."""
    trigger = build_trigger(SchedulerSettings(SCHEDULER_TIMEZONE=timezone))
    fires: list[str] = []
    previous: datetime | None = None
    now = start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        fires.append(fire.astimezone(ZoneInfo(timezone)).isoformat())
        previous = now = fire
    return fires


@pytest.mark.parametrize(
    ("timezone", "start", "expected"),
    [
        # Spring forward (2026-03-29 02:00 → 03:00): APScheduler's own CronTrigger skips 03-30.
        (
            "Europe/Paris",
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            ["2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00",
             "2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00"],
        ),
        # Fall back (2026-10-25 03:00 → 02:00).
        (
            "Europe/Paris",
            datetime(2026, 10, 23, 12, tzinfo=UTC),
            ["2026-10-24T00:00:00+02:00", "2026-10-25T00:00:00+02:00",
             "2026-10-26T00:00:00+01:00", "2026-10-27T00:00:00+01:00"],
        ),
        (
            "America/New_York",
            datetime(2026, 3, 6, 12, tzinfo=UTC),
            ["2026-03-07T00:00:00-05:00", "2026-03-08T00:00:00-05:00",
             "2026-03-09T00:00:00-04:00", "2026-03-10T00:00:00-04:00"],
        ),
        # Chile's clocks jump from 00:00 to 01:00 on 2026-09-06: that day starts at 01:00.
        (
            "America/Santiago",
            datetime(2026, 9, 4, 12, tzinfo=UTC),
            ["2026-09-05T00:00:00-04:00", "2026-09-06T01:00:00-03:00",
             "2026-09-07T00:00:00-03:00", "2026-09-08T00:00:00-03:00"],
        ),
    ],
)  # fmt: skip
def test_the_trigger_fires_every_local_midnight_across_daylight_saving_changes(
    timezone: str, start: datetime, expected: list[str]
) -> None:
    assert fire_times(timezone, start) == expected


def test_after_a_missed_midnight_the_trigger_reports_it_so_the_misfire_rules_apply() -> None:
    trigger = build_trigger(SchedulerSettings())
    previous = datetime(2026, 11, 22, tzinfo=UTC)
    woke_up = datetime(2026, 11, 23, 0, 20, tzinfo=UTC)

    assert trigger.get_next_fire_time(previous, woke_up) == datetime(2026, 11, 23, tzinfo=UTC)


def jobs(settings: SchedulerSettings) -> dict[str, Any]:
    scheduler = BackgroundScheduler(timezone=settings.timezone)
    configure_jobs(scheduler, settings, lambda: None)
    return {job.id: job for job in scheduler.get_jobs()}


def test_the_daily_job_coalesces_missed_runs_and_tolerates_a_late_start() -> None:
    settings = SchedulerSettings(
        SCHEDULER_TIMEZONE="Europe/Paris", SCHEDULER_MISFIRE_GRACE_SECONDS=1800
    )

    daily = jobs(settings)[DAILY_JOB_ID]

    assert isinstance(daily.trigger, CronTrigger)
    assert str(daily.trigger) == "cron[hour='0', minute='0', second='0']"
    assert daily.trigger.timezone == PARIS
    assert (daily.misfire_grace_time, daily.coalesce, daily.max_instances) == (1800, True, 1)


def test_a_catch_up_run_is_scheduled_for_start_up_unless_disabled() -> None:
    enabled = jobs(SchedulerSettings())
    disabled = jobs(SchedulerSettings(SCHEDULER_CATCH_UP=False))

    assert isinstance(enabled[CATCH_UP_JOB_ID].trigger, DateTrigger)
    assert set(disabled) == {DAILY_JOB_ID}


def test_the_batch_date_is_today_in_the_configured_timezone() -> None:
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
