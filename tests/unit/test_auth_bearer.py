"""The token check both APIs use (http_api.auth.CurrentUserId): http_api.auth's rules, each token
verified once until it expires, 401 with `WWW-Authenticate: Bearer` otherwise, declared in OpenAPI
as the `HTTPBearer` scheme."""

from __future__ import annotations

import time
from uuid import uuid4

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from http_api.auth import CurrentUserId, InvalidTokenError, TokenVerifier, issue_token
from runtime.settings import AuthSettings

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


def app_with_one_protected_route() -> FastAPI:
    app = FastAPI()
    app.state.tokens = TokenVerifier(lambda: SETTINGS)

    @app.get("/mine")
    async def mine(user_id: CurrentUserId) -> str:
        return str(user_id)

    return app


def test_the_dependency_answers_the_tokens_user() -> None:
    user = uuid4()
    token, _ = issue_token(user, SETTINGS)
    with TestClient(app_with_one_protected_route()) as client:
        for header in (f"Bearer {token}", f"bearer   {token}  "):
            response = client.get("/mine", headers={"Authorization": header})
            assert (response.status_code, response.json()) == (200, str(user))


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "missing bearer token"),
        ("Bearer", "missing bearer token"),
        ("Bearer   ", "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "missing bearer token"),
        ("Bearer not-a-jwt", "invalid token"),
    ],
)
def test_anything_but_a_valid_bearer_token_is_a_401_asking_for_one(
    header: str | None, detail: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    with TestClient(app_with_one_protected_route()) as client:
        response = client.get("/mine", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_dependency_is_declared_as_the_http_bearer_scheme_on_the_routes_using_it() -> None:
    spec = app_with_one_protected_route().openapi()
    assert spec["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer"}
    }
    assert spec["paths"]["/mine"]["get"]["security"] == [{"HTTPBearer": []}]
