"""POST /tasks/{id}/restore (undo a delete) against the real event store in PostgreSQL."""

from __future__ import annotations

from uuid import uuid4

from fastapi.testclient import TestClient

from tests.support.system import auth, client, register_and_login, store, token

__all__ = ["client", "store", "token"]  # the fixtures


def deleted_task(client: TestClient, token: str) -> dict[str, object]:
    created = client.post("/tasks", json={"title": "undo me"}, headers=auth(token))
    assert created.status_code == 201, created.text
    task = dict(created.json())
    done = client.patch(f"/tasks/{task['id']}", json={"done": True}, headers=auth(token))
    assert done.status_code == 200, done.text
    assert client.delete(f"/tasks/{task['id']}", headers=auth(token)).status_code == 204
    return dict(done.json())


def test_restore_brings_back_the_same_task_with_its_version_bumped(
    client: TestClient, token: str
) -> None:
    before = deleted_task(client, token)  # version 2; the delete made it 3
    restored = client.post(f"/tasks/{before['id']}/restore", headers=auth(token))
    assert restored.status_code == 200, restored.text
    body = restored.json()
    assert (body["id"], body["created_at"], body["title"]) == (
        before["id"],
        before["created_at"],
        "undo me",
    )
    assert (body["done"], body["done_at"], body["version"]) == (True, before["done_at"], 4)
    assert int(restored.headers["X-Event-Position"]) >= 1
    assert restored.headers["ETag"] == '"4"'
    # usable again like any other task
    renamed = client.patch(f"/tasks/{body['id']}", json={"title": "back"}, headers=auth(token))
    assert renamed.status_code == 200
    assert renamed.json()["version"] == 5


def test_restoring_a_task_that_is_not_deleted_answers_409(client: TestClient, token: str) -> None:
    task = deleted_task(client, token)
    assert client.post(f"/tasks/{task['id']}/restore", headers=auth(token)).status_code == 200
    again = client.post(f"/tasks/{task['id']}/restore", headers=auth(token))
    assert again.status_code == 409
    assert again.json() == {"detail": "task is not deleted"}


def test_another_users_or_an_unknown_task_answers_404(client: TestClient, token: str) -> None:
    task = deleted_task(client, token)
    intruder = register_and_login(client, "intruder@example.com")
    theirs = client.post(f"/tasks/{task['id']}/restore", headers=auth(intruder))
    assert theirs.status_code == 404
    assert theirs.json() == {"detail": "task not found"}
    assert client.post(f"/tasks/{uuid4()}/restore", headers=auth(token)).status_code == 404
    # the owner's task is still deleted, and the owner can still restore it
    assert client.post(f"/tasks/{task['id']}/restore", headers=auth(token)).status_code == 200


def test_restore_honours_if_match_and_refuses_bad_input(client: TestClient, token: str) -> None:
    task = deleted_task(client, token)
    path = f"/tasks/{task['id']}/restore"
    stale = client.post(path, headers={**auth(token), "If-Match": '"2"'})
    assert stale.status_code == 409
    assert client.post(path, headers={**auth(token), "If-Match": "two"}).status_code == 400
    assert client.post("/tasks/not-a-uuid/restore", headers=auth(token)).status_code == 422
    assert client.post(path).status_code == 401
    assert client.post(path, headers={**auth(token), "If-Match": '"3"'}).status_code == 200
