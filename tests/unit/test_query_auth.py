"""The query API's token check: common.auth's rules, each token verified once until it expires."""

from __future__ import annotations

import time
from uuid import uuid4

import pytest

from common.auth import InvalidTokenError, TokenVerifier, issue_token
from common.settings import AuthSettings

SETTINGS = AuthSettings(
    JWT_SECRET="a-test-secret-of-at-least-32-characters!!", JWT_EXPIRES_SECONDS=60
)


class CountingSettings:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> AuthSettings:
        self.calls += 1
        return SETTINGS


def test_a_valid_token_is_verified_once_and_then_recognised() -> None:
    settings = CountingSettings()
    verifier = TokenVerifier(settings)
    user = uuid4()
    token, _ = issue_token(user, SETTINGS)
    assert [verifier.user_id(token) for _ in range(3)] == [user] * 3
    assert settings.calls == 1


def test_a_recognised_token_is_refused_as_expired_once_its_exp_has_passed() -> None:
    now = [0.0]
    verifier = TokenVerifier(CountingSettings(), clock=lambda: now[0])
    token, expires_in = issue_token(uuid4(), SETTINGS)
    now[0] = time.time()
    verifier.user_id(token)
    now[0] += expires_in + 1
    with pytest.raises(InvalidTokenError, match="token expired"):
        verifier.user_id(token)


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c"])
def test_invalid_tokens_are_refused_every_time_and_never_remembered(token: str) -> None:
    settings = CountingSettings()
    verifier = TokenVerifier(settings)
    for _ in range(2):
        with pytest.raises(InvalidTokenError, match="invalid token"):
            verifier.user_id(token)
    assert settings.calls == 2


def test_a_token_signed_with_another_secret_is_refused() -> None:
    other = AuthSettings(JWT_SECRET="another-secret-of-at-least-32-characters")
    token, _ = issue_token(uuid4(), other)
    with pytest.raises(InvalidTokenError):
        TokenVerifier(CountingSettings()).user_id(token)


def test_the_memory_is_bounded() -> None:
    verifier = TokenVerifier(CountingSettings(), max_entries=3)
    users = [uuid4() for _ in range(5)]
    tokens = [issue_token(u, SETTINGS)[0] for u in users]
    assert [verifier.user_id(t) for t in tokens] == users
    assert len(verifier) == 3
