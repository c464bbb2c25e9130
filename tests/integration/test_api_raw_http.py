"""Finding 2 of issue 8, as a client's bytes reach uvicorn: `If-Match: ²` (the latin-1 byte 0xB2)
was a 503 with "Exception in ASGI application" in the log and a reset connection. Now it is a 400
JSON answer on an orderly connection, and even a bug answers a JSON 500 rather than dropping it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from command_api.bootstrap import bootstrap as create_command_app
from event_store.application import TodoStore, store_env
from http_api.auth import issue_token
from query_api.bootstrap import create_app as create_query_app
from query_api.settings import QueryApiSettings
from runtime.settings import DatabaseSettings, auth_settings
from tests.support.http_server import raw_request, serving
from tests.support.read_side import migrate

pytestmark = pytest.mark.integration


class BuggyDeleteStore(TodoStore):
    """The real store, except that deleting hits a bug."""

    def delete_task(self, user_id: UUID, task_id: UUID, expected_version: int | None = None) -> Any:
        raise RuntimeError("a bug in delete")


@pytest.fixture
def command_api(db_settings: DatabaseSettings) -> Iterator[tuple[str, str, str]]:
    migrate(db_settings)  # the auth throttle's table
    store = BuggyDeleteStore(env=store_env(db_settings))
    try:
        with serving(create_command_app(store, db=db_settings)) as base_url:
            account = {"email": "raw@example.com", "password": "correct horse"}
            assert httpx.post(f"{base_url}/auth/register", json=account).status_code == 201
            token = httpx.post(f"{base_url}/auth/login", json=account).json()["access_token"]
            task = httpx.post(
                f"{base_url}/tasks",
                json={"title": "t"},
                headers={"Authorization": f"Bearer {token}"},
            ).json()["id"]
            yield base_url, token, task
    finally:
        store.close()


def http(method: str, path: str, token: str, headers: bytes = b"", body: bytes = b"") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n".encode()
        + headers
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


def parse(answer: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def test_an_if_match_of_a_latin1_superscript_two_is_a_400_json_answer_on_an_orderly_connection(
    command_api: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    base_url, token, task = command_api
    answer = raw_request(
        base_url, http("PATCH", f"/tasks/{task}", token, b"If-Match: \xb2\r\n", b'{"done": true}')
    )
    status, headers, body = parse(answer)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "If-Match" in body["detail"]
    assert "Exception in ASGI application" not in caplog.text


def test_a_bug_is_a_500_json_answer_with_an_error_id_and_uvicorn_sees_no_exception(
    command_api: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    base_url, token, task = command_api
    status, _, body = parse(raw_request(base_url, http("DELETE", f"/tasks/{task}", token)))
    assert status == 500
    assert body["detail"] == "internal error"
    assert any(getattr(r, "error_id", None) == body["error_id"] for r in caplog.records)
    assert "Exception in ASGI application" not in caplog.text


def test_the_same_connection_keeps_serving_after_a_refused_header(
    command_api: tuple[str, str, str],
) -> None:
    base_url, token, task = command_api
    bad = http("PATCH", f"/tasks/{task}", token, b"If-Match: \xb2\r\n", b'{"done": true}')
    good = http("PATCH", f"/tasks/{task}", token, b"If-Match: 1\r\n", b'{"done": true}')
    keep_alive = bad.replace(b"Connection: close", b"Connection: keep-alive")
    answer = raw_request(base_url, keep_alive + good)
    assert answer.count(b"HTTP/1.1 ") == 2
    second = answer[answer.index(b"HTTP/1.1 ", 1) :]
    assert parse(second)[0] == 200


def test_an_x_min_position_of_a_latin1_superscript_two_is_a_400_on_the_query_api(
    read_db: DatabaseSettings, caplog: pytest.LogCaptureFixture
) -> None:
    token, _ = issue_token(uuid4(), auth_settings())
    app = create_query_app(settings=QueryApiSettings(), db=read_db)
    with serving(app) as base_url:
        answer = raw_request(base_url, http("GET", "/tasks", token, b"X-Min-Position: \xb2\r\n"))
    status, _, body = parse(answer)
    assert status == 400
    assert "X-Min-Position" in body["detail"]
    assert "Exception in ASGI application" not in caplog.text
