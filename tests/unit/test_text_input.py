"""Finding 1: the write side never accepts text the read side would refuse (PostgreSQL text holds no
NUL; UTF-8 cannot encode a lone surrogate). The rule lives in the domain and the command API's
schemas use it, so a refused title is a 422 naming the field, never a lost task."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from event_store.domain.model import (
    InvalidTextError,
    InvalidTitleError,
    Task,
    User,
    unstorable_text_problem,
)
from tests.support.command_app import client, token
from tests.support.system import auth

__all__ = ["client", "token"]  # the fixtures

UNSTORABLE = ["a\x00b", "\x00", "a\ud800b", "\udfff"]


@pytest.mark.parametrize("text", UNSTORABLE)
def test_unstorable_text_is_named_as_such(text: str) -> None:
    assert unstorable_text_problem(text) is not None


@pytest.mark.parametrize("text", ["plain", "émoji 🎉 and 中文", "tab\tand\nnewline", "\U0010ffff"])
def test_ordinary_unicode_is_storable(text: str) -> None:
    assert unstorable_text_problem(text) is None


@pytest.mark.parametrize("title", UNSTORABLE)
def test_the_domain_refuses_to_create_or_rename_a_task_with_unstorable_text(title: str) -> None:
    with pytest.raises(InvalidTitleError) as refused:
        Task.create(user_id=uuid4(), title=title)
    assert refused.value.field == "title"
    owner = uuid4()
    task = Task.create(user_id=owner, title="fine")
    with pytest.raises(InvalidTitleError):
        task.rename(user_id=owner, title=title)


def test_the_domain_refuses_to_register_an_email_with_a_nul() -> None:
    with pytest.raises(InvalidTextError) as refused:
        User.register(email="a\x00@example.com", password_hash="x")
    assert refused.value.field == "email"


# --- over HTTP: the command API on an in-memory store (eventsourcing's POPO recorder) -----------


def field_errors(body: dict[str, object]) -> list[tuple[str, ...]]:
    detail = body["detail"]
    assert isinstance(detail, list)
    return [tuple(error["loc"]) for error in detail]


@pytest.mark.parametrize("title_json", ['"a\\u0000b"', '"\\u0000"', '"a\\ud800b"', '"\\udfff x"'])
def test_a_title_with_nul_or_a_lone_surrogate_is_refused_with_422_naming_the_title(
    client: TestClient, token: str, title_json: str
) -> None:
    response = client.post(
        "/tasks",
        content=f'{{"title": {title_json}}}'.encode(),
        headers={**auth(token), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert field_errors(response.json()) == [("body", "title")]
    response.content.decode("ascii")  # the answer itself is plain ASCII JSON


def test_renaming_a_task_to_a_title_with_nul_is_refused_with_422(
    client: TestClient, token: str
) -> None:
    task = client.post("/tasks", json={"title": "fine"}, headers=auth(token)).json()
    response = client.patch(f"/tasks/{task['id']}", json={"title": "x\x00"}, headers=auth(token))
    assert response.status_code == 422
    assert field_errors(response.json()) == [("body", "title")]
    assert "NUL" in json.dumps(response.json())


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/auth/register", {"email": "a\x00b@example.com", "password": "longenough"}, "email"),
        ("/auth/register", {"email": "b@example.com", "password": "long\x00enough"}, "password"),
        ("/auth/login", {"email": "a\x00@example.com", "password": "longenough"}, "email"),
        ("/auth/login", {"email": "ada@example.com", "password": "x\x00"}, "password"),
    ],
)
def test_auth_bodies_with_nul_are_refused_with_422_naming_the_field(
    client: TestClient, path: str, body: dict[str, str], field: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert field_errors(response.json()) == [("body", field)]


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
def test_a_password_with_a_lone_surrogate_is_a_422_not_a_500(client: TestClient, path: str) -> None:
    raw = '{"email": "ada@example.com", "password": "abc\\ud800defgh"}'
    response = client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert field_errors(response.json()) == [("body", "password")]


def test_a_refusal_never_echoes_the_password_back(client: TestClient) -> None:
    response = client.post("/auth/register", json={"email": "x", "password": "secret-\x00-pass"})
    assert response.status_code == 422
    assert "secret" not in response.text
