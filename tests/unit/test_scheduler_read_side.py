"""The digest batch waits (bounded) for the read side to apply what the store held at its start."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from scheduler.read_side import wait_for_read_side


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        """Event.wait: time passes, nobody asks to stop."""
        self.waits.append(seconds)
        self.now += seconds
        return False


class Progress:
    """A read side whose applied position moves through `positions` (then stays at the last)."""

    def __init__(self, *positions: int | Exception) -> None:
        self._positions: Iterator[int | Exception] = iter(positions)
        self._last: int | Exception = 0
        self.asked = 0

    def applied_position(self) -> int:
        self.asked += 1
        self._last = next(self._positions, self._last)
        if isinstance(self._last, Exception):
            raise self._last
        return self._last


def test_the_wait_ends_as_soon_as_the_read_side_reaches_the_high_water_mark() -> None:
    clock, progress = FakeClock(), Progress(3, 5, 9, 12)

    fresh = wait_for_read_side(progress, 9, timeout=60, wait=clock.wait, clock=clock)

    assert fresh is True
    assert progress.asked == 3, "no poll after the mark was reached"


def test_a_read_side_already_past_the_mark_costs_no_wait() -> None:
    clock = FakeClock()

    assert wait_for_read_side(Progress(20), 9, timeout=60, wait=clock.wait, clock=clock)
    assert clock.waits == []


def test_a_read_side_that_never_catches_up_is_given_up_after_the_timeout_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, progress = FakeClock(), Progress(4)

    with caplog.at_level(logging.WARNING, logger="scheduler.read_side"):
        fresh = wait_for_read_side(
            progress, 9, timeout=10, wait=clock.wait, poll_interval=0.5, clock=clock
        )

    assert fresh is False
    assert clock.now == pytest.approx(10), "waited the whole bound, not longer"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "lags the store" in warning.getMessage()
    assert (warning.__dict__["high_water_mark"], warning.__dict__["read_side_position"]) == (9, 4)


def test_an_unreachable_pipeline_is_not_yet_fresh_and_the_wait_goes_on() -> None:
    clock = FakeClock()
    progress = Progress(ConnectionError("kafka down"), ConnectionError("kafka down"), 9)

    assert wait_for_read_side(progress, 9, timeout=60, wait=clock.wait, clock=clock)
    assert progress.asked == 3


def test_stopping_the_scheduler_ends_the_wait_without_claiming_freshness(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()

    with caplog.at_level(logging.WARNING, logger="scheduler.read_side"):
        fresh = wait_for_read_side(Progress(1), 9, timeout=60, wait=lambda _s: True, clock=clock)

    assert fresh is False
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
