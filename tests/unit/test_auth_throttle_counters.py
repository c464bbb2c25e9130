"""The throttle's GCRA on in-memory counters (the unit tests' store), through AuthThrottle."""

from __future__ import annotations

import asyncio

import pytest

from command_api.settings import AuthThrottleSettings
from command_api.throttle import AuthThrottle, InMemoryHitCounters, Key, Scope, ThrottledError


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock) -> AuthThrottle:
    settings = AuthThrottleSettings(
        AUTH_THROTTLE_WINDOW_SECONDS=60, AUTH_LOGIN_FAILURES_PER_EMAIL=5
    )
    return AuthThrottle(InMemoryHitCounters(clock), settings)


EMAIL = Key(Scope.LOGIN_FAILURES_PER_EMAIL, "ada@example.com")


async def fill_the_window(guard: AuthThrottle) -> None:
    for _ in range(5):  # AUTH_LOGIN_FAILURES_PER_EMAIL
        await guard.take(EMAIL)


def test_the_sixth_failure_in_a_window_is_refused_with_the_wait_until_the_next_slot() -> None:
    clock = Clock()
    guard = throttle(clock)

    async def scenario() -> int:
        await fill_the_window(guard)
        with pytest.raises(ThrottledError) as refused:
            await guard.take(EMAIL)
        return refused.value.retry_after

    assert asyncio.run(scenario()) == 12, "one slot frees every 60/5 s"


def test_a_hit_given_back_frees_its_slot_and_time_frees_the_rest() -> None:
    clock = Clock()
    guard = throttle(clock)

    async def scenario() -> None:
        await fill_the_window(guard)
        await guard.give_back(EMAIL)
        await guard.take(EMAIL)  # the slot given back
        clock.now += 12
        await guard.take(EMAIL)  # a slot freed by time
        with pytest.raises(ThrottledError):
            await guard.take(EMAIL)
        clock.now += 61
        assert await guard.purge_expired() == 1

    asyncio.run(scenario())
