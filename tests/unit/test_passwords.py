"""Password hashing: the bounded bcrypt pool and the dummy hash for unknown emails."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from command_api.passwords import PasswordHasher, hash_cost, hash_password
from runtime.settings import AuthSettings


@pytest.mark.parametrize("rounds", [4, 5, 6])
def test_the_dummy_hash_has_the_cost_of_the_bcrypt_rounds_setting(rounds: int) -> None:
    settings = AuthSettings(ENVIRONMENT="test", BCRYPT_ROUNDS=rounds)
    hasher = PasswordHasher(settings.BCRYPT_ROUNDS, workers=1)
    try:
        assert hash_cost(hasher.dummy_hash) == rounds
    finally:
        hasher.close()


def test_new_hashes_have_the_configured_cost_and_verify() -> None:
    hasher = PasswordHasher(rounds=5, workers=1)

    async def scenario() -> tuple[str, bool, bool]:
        hashed = await hasher.hash("correct horse")
        return (
            hashed,
            await hasher.verify("correct horse", hashed),
            await hasher.verify("wrong horse", hashed),
        )

    try:
        hashed, right, wrong = asyncio.run(scenario())
    finally:
        hasher.close()
    assert hash_cost(hashed) == 5
    assert right and not wrong


def test_an_unknown_email_never_verifies_even_with_the_dummy_password() -> None:
    hasher = PasswordHasher(rounds=4, workers=1)
    try:
        assert not asyncio.run(hasher.verify("not-a-real-password", None))
    finally:
        hasher.close()


def test_at_most_the_configured_number_of_bcrypt_threads_run_however_many_logins_wait() -> None:
    hasher = PasswordHasher(rounds=4, workers=2)
    hashed = hash_password("pw-of-someone", 4)
    running = 0
    most = 0
    lock = threading.Lock()
    original = hasher._pool.submit

    def counting_submit(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        def counted():  # type: ignore[no-untyped-def]
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    running -= 1

        return original(counted)

    hasher._pool.submit = counting_submit  # type: ignore[method-assign]

    async def flood() -> list[bool]:
        return list(await asyncio.gather(*(hasher.verify("guess", hashed) for _ in range(12))))

    try:
        results = asyncio.run(flood())
    finally:
        hasher.close()
    assert results == [False] * 12
    assert most == 2


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")
def test_bcrypt_threads_run_at_the_configured_nice_value_and_the_caller_keeps_its_own() -> None:
    hasher = PasswordHasher(rounds=4, workers=1, nice=7)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    try:
        theirs = hasher._pool.submit(
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        ).result()
    finally:
        hasher.close()
    assert theirs == 7
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
