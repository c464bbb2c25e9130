"""Every documented route of the gateway (gateway/default.conf.template) reaches the right service,
through the real nginx of the whole running system (what the gateway answers itself:
test_gateway_own_answers.py).

Which service answered is proven two ways, not just by the status code:
- the gateway's access log names the upstream address of each request (found by a unique `probe`
  query parameter), and the two upstream addresses are checked to be the command API and the query
  API by their own /openapi.json;
- each answer is one only that service can give (e.g. GET /tasks exists only on the query API,
  POST /tasks only on the command API), checked against both services' OpenAPI documents.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support.gateway_probe import Gateway, bearer, only_on, operations

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.support.gateway_probe_fixtures"]  # openapi, gateway, token
COMMAND_TITLE = "TODO command API"


def test_the_two_upstreams_are_the_command_api_and_the_query_api_by_their_own_description(
    openapi: dict[str, dict[str, Any]],
) -> None:
    assert openapi["command"]["info"]["title"] == COMMAND_TITLE
    assert openapi["query"]["info"]["title"] != COMMAND_TITLE
    assert "query" in openapi["query"]["info"]["title"].lower()
    only_on(openapi, "command", ("POST", "/tasks"))
    only_on(openapi, "query", ("GET", "/tasks"))
    only_on(openapi, "query", ("GET", "/me"))


def test_register_and_login_reach_the_command_api_and_return_its_bodies(
    gateway: Gateway, openapi: dict[str, dict[str, Any]]
) -> None:
    only_on(openapi, "command", ("POST", "/auth/register"))
    only_on(openapi, "command", ("POST", "/auth/login"))
    email = f"auth-{uuid.uuid4().hex[:10]}@example.com"
    credentials = {"email": email, "password": "correct horse battery"}

    registered = gateway.request("POST", "/api/auth/register", json=credentials)
    gateway.assert_answer(registered, 201, "command")
    body = registered.json()
    assert set(body) == {"id", "email", "created_at"}
    assert body["email"] == email
    uuid.UUID(body["id"])

    logged_in = gateway.request("POST", "/api/auth/login", json=credentials)
    gateway.assert_answer(logged_in, 200, "command")
    token = logged_in.json()
    assert set(token) == {"access_token", "token_type", "expires_in"}
    assert token["token_type"] == "bearer"
    assert token["expires_in"] > 0

    refused = gateway.request("POST", "/api/auth/login", json={**credentials, "password": "nope"})
    gateway.assert_answer(refused, 401, "command")
    assert refused.json() == {"detail": "invalid email or password"}


def test_task_writes_reach_the_command_api_and_task_reads_reach_the_query_api(
    gateway: Gateway, token: str, openapi: dict[str, dict[str, Any]]
) -> None:
    for op in [("POST", "/tasks"), ("PATCH", "/tasks/{task_id}"), ("DELETE", "/tasks/{task_id}")]:
        only_on(openapi, "command", op)
    only_on(openapi, "query", ("GET", "/tasks"))
    assert ("GET", "/tasks/{task_id}") in operations(openapi["query"])
    assert ("GET", "/tasks/{task_id}") not in operations(openapi["command"])

    # POST /api/tasks -> command API: 201, the write's event position in a header.
    created = gateway.create_task(token, "Route me")
    gateway.assert_answer(created, 201, "command")
    task = created.json()
    assert task["title"] == "Route me"
    assert task["version"] == 1
    position = created.headers["X-Event-Position"]
    assert int(position) > 0
    read_headers = bearer(token, **{"X-Min-Position": position})

    # GET /api/tasks with X-Min-Position -> query API: a page with our own write in it.
    listed = gateway.request("GET", "/api/tasks", headers=read_headers)
    gateway.assert_answer(listed, 200, "query")
    page = listed.json()
    assert set(page) == {"items", "next_cursor"}
    assert task["id"] in [item["id"] for item in page["items"]]
    assert listed.headers.get("X-Stale", "false").lower() != "true"

    # GET /api/tasks/{id} -> query API.
    one = gateway.request("GET", f"/api/tasks/{task['id']}", headers=read_headers)
    gateway.assert_answer(one, 200, "query")
    assert one.json()["id"] == task["id"]
    assert one.json()["title"] == "Route me"

    # HEAD /api/tasks goes to the query side too (reads), never to the command API.
    head = gateway.request("HEAD", "/api/tasks", headers=read_headers)
    assert gateway.answered_by(head) == "query"

    # PATCH /api/tasks/{id} -> command API: 200, version 2.
    renamed = gateway.request(
        "PATCH",
        f"/api/tasks/{task['id']}",
        json={"title": "Routed"},
        headers=bearer(token, **{"If-Match": "1"}),
    )
    gateway.assert_answer(renamed, 200, "command")
    assert renamed.json()["version"] == 2
    assert renamed.json()["title"] == "Routed"
    assert int(renamed.headers["X-Event-Position"]) > int(position)

    # DELETE /api/tasks/{id} -> command API: 204.
    deleted = gateway.request("DELETE", f"/api/tasks/{task['id']}", headers=bearer(token))
    gateway.assert_answer(deleted, 204, "command")
    assert deleted.content == b""
    after = bearer(token, **{"X-Min-Position": deleted.headers["X-Event-Position"]})

    gone = gateway.request("GET", f"/api/tasks/{task['id']}", headers=after)
    gateway.assert_answer(gone, 404, "query")


def test_restore_reaches_the_command_api_and_history_and_activity_the_query_api(
    gateway: Gateway, token: str, openapi: dict[str, dict[str, Any]]
) -> None:
    only_on(openapi, "command", ("POST", "/tasks/{task_id}/restore"))
    only_on(openapi, "query", ("GET", "/tasks/{task_id}/history"))
    only_on(openapi, "query", ("GET", "/activity"))
    created = gateway.create_task(token, "Undo")
    task_id = created.json()["id"]
    assert gateway.request("DELETE", f"/api/tasks/{task_id}", headers=bearer(token)).is_success

    restored = gateway.request("POST", f"/api/tasks/{task_id}/restore", headers=bearer(token))
    gateway.assert_answer(restored, 200, "command")
    assert (restored.json()["id"], restored.json()["version"]) == (task_id, 3)
    after = bearer(token, **{"X-Min-Position": restored.headers["X-Event-Position"]})

    history = gateway.request("GET", f"/api/tasks/{task_id}/history", headers=after)
    gateway.assert_answer(history, 200, "query")
    assert [i["type"] for i in history.json()["items"]] == [
        "task.created",
        "task.deleted",
        "task.restored",
    ]

    activity = gateway.request("GET", "/api/activity", params={"limit": 1}, headers=after)
    gateway.assert_answer(activity, 200, "query")
    assert [(i["type"], i["task_id"]) for i in activity.json()["items"]] == [
        ("task.restored", task_id)
    ]
    assert gateway.request("POST", "/api/activity", headers=bearer(token)).status_code == 405


def test_me_reaches_the_query_api_with_the_users_stats(
    gateway: Gateway, token: str, openapi: dict[str, dict[str, Any]]
) -> None:
    only_on(openapi, "query", ("GET", "/me"))
    created = gateway.create_task(token, "Count me")
    assert created.status_code == 201, created.text
    position = created.headers["X-Event-Position"]

    me = gateway.request("GET", "/api/me", headers=bearer(token, **{"X-Min-Position": position}))
    gateway.assert_answer(me, 200, "query")
    body = me.json()
    assert body["email"].startswith("routes-")
    assert set(body["stats"]) >= {"total", "done", "undone"}
    assert body["stats"]["total"] == body["stats"]["done"] + body["stats"]["undone"]
    assert body["stats"]["total"] >= 1

    anonymous = gateway.request("GET", "/api/me")
    gateway.assert_answer(anonymous, 401, "query")


def test_patch_me_reaches_the_command_api_and_get_me_then_answers_the_new_preferences(
    gateway: Gateway, token: str, openapi: dict[str, dict[str, Any]]
) -> None:
    only_on(openapi, "command", ("PATCH", "/me"))
    changed = gateway.request(
        "PATCH", "/api/me", json={"timezone": "Asia/Kathmandu"}, headers=bearer(token)
    )
    gateway.assert_answer(changed, 200, "command")
    position = changed.headers["X-Event-Position"]

    me = gateway.request("GET", "/api/me", headers=bearer(token, **{"X-Min-Position": position}))
    assert gateway.answered_by(me) == "query"
    assert me.json()["timezone"] == "Asia/Kathmandu"

    refused = gateway.request(
        "PATCH", "/api/me", json={"timezone": "Nowhere"}, headers=bearer(token)
    )
    gateway.assert_answer(refused, 422, "command")


def test_the_unsubscribe_link_reaches_the_command_api_for_get_and_post(
    gateway: Gateway, openapi: dict[str, dict[str, Any]]
) -> None:
    only_on(openapi, "command", ("GET", "/unsubscribe"))
    only_on(openapi, "command", ("POST", "/unsubscribe"))
    for method in ("GET", "POST"):
        answer = gateway.request(method, "/api/unsubscribe", params={"token": "not-a-token"})
        gateway.assert_answer(answer, 403, "command")
        assert answer.json() == {"detail": "invalid unsubscribe link"}


def test_the_stream_reaches_the_query_api_and_passes_each_message_at_once(
    gateway: Gateway, token: str, openapi: dict[str, dict[str, Any]]
) -> None:
    only_on(openapi, "query", ("GET", "/stream"))
    probe = uuid.uuid4().hex
    url = f"{gateway.system.gateway_url}/api/stream"
    with httpx.stream(
        "GET", url, params={"probe": probe}, headers=bearer(token), timeout=10
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert "event: ready" in [next(lines) for _ in range(4)]
        created = gateway.create_task(token, "Pushed")
        assert created.status_code == 201, created.text
        # Unbuffered: the change arrives while the stream is still open (within the timeout).
        while not (line := next(lines)).startswith('data: {"'):
            pass
        assert created.json()["id"] in line and "Pushed" in line
    done = re.compile(rf"probe={probe}.* up=(\S+)")
    deadline = time.monotonic() + 5
    while not (m := done.search(gateway.system.access_log.read_text(errors="replace"))):
        assert time.monotonic() < deadline, "the stream's access-log line"
        time.sleep(0.05)
    assert m.group(1) == gateway.system.upstream("query_api")
