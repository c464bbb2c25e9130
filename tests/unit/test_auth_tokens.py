from __future__ import annotations

import time
from uuid import uuid4

import jwt
import pytest

from command_api.passwords import hash_password, verify_password
from http_api.auth import InvalidTokenError, issue_token, verify_token
from runtime.settings import AuthSettings

SETTINGS = AuthSettings(ENVIRONMENT="test", JWT_SECRET="s" * 40, BCRYPT_ROUNDS=4)


def test_a_token_carries_the_user_id_in_sub_with_iat_and_exp() -> None:
    user_id = uuid4()
    token, expires_in = issue_token(user_id, SETTINGS)
    claims = jwt.decode(token, SETTINGS.JWT_SECRET.get_secret_value(), algorithms=["HS256"])
    assert claims["sub"] == str(user_id)
    assert claims["exp"] - claims["iat"] == expires_in == SETTINGS.JWT_EXPIRES_SECONDS
    assert verify_token(token, SETTINGS) == user_id


def test_an_expired_token_is_refused() -> None:
    now = int(time.time())
    token = jwt.encode(
        {"sub": str(uuid4()), "iat": now - 100, "exp": now - 10},
        SETTINGS.JWT_SECRET.get_secret_value(),
    )
    with pytest.raises(InvalidTokenError, match="expired"):
        verify_token(token, SETTINGS)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token, _ = issue_token(uuid4(), AuthSettings(ENVIRONMENT="test", JWT_SECRET="x" * 40))
    with pytest.raises(InvalidTokenError):
        verify_token(token, SETTINGS)


def test_an_unsigned_alg_none_token_is_refused() -> None:
    now = int(time.time())
    token = jwt.encode({"sub": str(uuid4()), "iat": now, "exp": now + 60}, None, algorithm="none")
    with pytest.raises(InvalidTokenError):
        verify_token(token, SETTINGS)


def test_a_token_without_exp_is_refused() -> None:
    token = jwt.encode(
        {"sub": str(uuid4()), "iat": int(time.time())}, SETTINGS.JWT_SECRET.get_secret_value()
    )
    with pytest.raises(InvalidTokenError):
        verify_token(token, SETTINGS)


def test_the_dev_secret_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        AuthSettings(ENVIRONMENT="prod")


def test_weak_bcrypt_cost_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="BCRYPT_ROUNDS"):
        AuthSettings(ENVIRONMENT="prod", JWT_SECRET="p" * 40, BCRYPT_ROUNDS=10)


def test_passwords_verify_only_against_their_own_hash_even_past_72_bytes() -> None:
    long_a = "a" * 100
    hashed = hash_password(long_a, rounds=4)
    assert verify_password(long_a, hashed)
    assert not verify_password("a" * 99 + "b", hashed)
    assert not verify_password(long_a, "not-a-bcrypt-hash")
