"""Scheduler settings (environment variable = field name, see runtime.settings.AppSettings)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from runtime.settings import AppSettings


class SchedulerSettings(AppSettings):
    # IANA timezone whose today is the date of `python -m scheduler run` without --date (the
    # service itself records each user's digest after their own midnight, every quarter hour).
    SCHEDULER_TIMEZONE: str = "UTC"
    # How late (seconds) a quarter-hour tick may still start, e.g. after the host slept (a late
    # tick only finds more zones due; the date of each comes from the clock when it runs).
    SCHEDULER_MISFIRE_GRACE_SECONDS: int = Field(default=3600, ge=1, le=23 * 3600)
    # On start, run today's batch if it has not completed yet (the scheduler was down at 00:00).
    SCHEDULER_CATCH_UP: bool = True
    # Users read per keyset page (two queries per page).
    SCHEDULER_PAGE_SIZE: int = Field(default=2000, ge=1, le=50_000)
    # At most this many undone titles in a digest (oldest first); stats.undone keeps the full count.
    SCHEDULER_MAX_UNDONE_TITLES: int = Field(default=20, ge=0, le=200)
    # Wait before retrying a batch that failed (database down...), in the long-running service.
    SCHEDULER_RETRY_SECONDS: float = Field(default=60.0, gt=0)
    # Before reading, a batch waits up to this long for the read side to apply every event the
    # store held when it started (0 = do not wait); then it runs anyway and logs a warning.
    SCHEDULER_READ_SIDE_WAIT_SECONDS: float = Field(default=300.0, ge=0, le=3600)

    @field_validator("SCHEDULER_TIMEZONE")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as UTC)") from e
        return value

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.SCHEDULER_TIMEZONE)
