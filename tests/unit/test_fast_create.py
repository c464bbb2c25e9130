"""POST /tasks answered ahead of FastAPI's plumbing (command_api/fast_create.py): the same answer
as the FastAPI route for the ordinary request, and every other request handed on to that route
with its body, so its answers (401, 400, 422...) stay exactly what they were."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from command_api import fast_create
from tests.support.command_app import client, token
from tests.support.system import auth

__all__ = ["client", "token"]  # the fixtures

JSON = "application/json"
# Another spelling of JSON: the fast route leaves it to the FastAPI route.
JSON_WITH_CHARSET = "application/json; charset=utf-8"


@pytest.fixture
def fast_answers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The commands the fast route took on (None: handed on to the FastAPI route)."""
    taken: list[Any] = []
    real = fast_create._command

    def spy(scope: Any, body: bytes) -> Any:
        command = real(scope, body)
        taken.append(command)
        return command

    monkeypatch.setattr(fast_create, "_command", spy)
    return taken


def post(client: TestClient, token: str, body: bytes, content_type: str = JSON) -> Any:
    return client.post(
        "/tasks", content=body, headers={**auth(token), "Content-Type": content_type}
    )


def test_an_ordinary_create_is_answered_by_the_fast_route_as_the_fastapi_route_answers(
    client: TestClient, token: str, fast_answers: list[Any]
) -> None:
    fast = post(client, token, b'{"title": "  fast  "}')
    framework = post(client, token, b'{"title": "  fast  "}', JSON_WITH_CHARSET)
    assert [c is not None for c in fast_answers] == [True, False]  # the second: handed on
    assert fast.status_code == framework.status_code == 201
    for name in ("content-type", "etag", "traceparent"):
        assert (name in fast.headers) and (name in framework.headers)
    assert fast.headers["content-type"] == framework.headers["content-type"]
    assert fast.headers["etag"] == framework.headers["etag"] == '"1"'
    assert int(framework.headers["x-event-position"]) > int(fast.headers["x-event-position"])
    fast_body, framework_body = fast.json(), framework.json()
    assert fast_body.keys() == framework_body.keys()
    assert fast_body["title"] == framework_body["title"] == "fast"
    assert fast_body["id"] != framework_body["id"]
    assert (fast_body["done"], fast_body["done_at"], fast_body["version"]) == (False, None, 1)


@pytest.mark.parametrize(
    ("body", "status", "detail_type"),
    [
        (b'{"title": ""}', 422, list),  # FastAPI's validation shape
        (b'{"title": "a", "extra": 1}', 422, list),
        (b'{"title": "nul \\u0000"}', 422, list),
        (b"[1, 2]", 422, list),
        (b'{"title": ', 422, list),
        (b'{"title": "\xff"}', 400, str),  # not UTF-8
    ],
)
def test_a_bad_body_is_answered_by_the_fastapi_route(
    client: TestClient,
    token: str,
    fast_answers: list[Any],
    body: bytes,
    status: int,
    detail_type: type,
) -> None:
    response = post(client, token, body)
    assert fast_answers == [None]
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], detail_type)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-a-token", "Basic abc", "Bearer ", "bearer  x"]
)
def test_a_request_without_a_good_token_gets_the_fastapi_routes_401(
    client: TestClient, authorization: str | None
) -> None:
    headers = {"Content-Type": JSON}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = client.post("/tasks", content=b'{"title": "x"}', headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)


def test_other_methods_on_tasks_still_answer_405_naming_the_allowed_ones(
    client: TestClient, token: str
) -> None:
    response = client.put("/tasks", json={"title": "x"}, headers=auth(token))
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
