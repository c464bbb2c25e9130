"""Which digests are due: each user's digest for their local date D is recorded right after 00:00 D
in their own timezone.

The scheduler ticks every 15 minutes (every real UTC offset is a whole number of quarter hours:
+05:30, +05:45, -09:30 included), and at each tick asks, per timezone in use, "what is the local
date now?". A zone whose local date's batch has not completed yet is due (scheduler/runs.py keeps
that per date and zone). Local dates come from zoneinfo, so DST changes need no special case: on a
day whose midnight does not exist (clocks jump from 23:59:59 to 01:00), the new date starts at the
jump and the first tick after it finds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

TICK_MINUTES = 15


def local_date(now: datetime, timezone: str) -> date:
    """The date on a wall clock in `timezone` at the instant `now` (timezone-aware)."""
    return now.astimezone(ZoneInfo(timezone)).date()


def local_dates(now: datetime, timezones: Iterable[str]) -> dict[date, list[str]]:
    """The zones grouped by their local date at `now` (at most three dates at any instant)."""
    by_date: dict[date, list[str]] = {}
    for zone in sorted(set(timezones)):
        by_date.setdefault(local_date(now, zone), []).append(zone)
    return by_date


def tick_trigger() -> CronTrigger:
    """Every quarter hour on the UTC clock (no DST there, so no tick is skipped or doubled)."""
    return CronTrigger(minute=f"*/{TICK_MINUTES}", second=0, timezone=UTC)
