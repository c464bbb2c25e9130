"""The query API's adapters faked for unit tests: a read model held in dicts, a waiter that says
whether a position was reached (a client on them: tests.support.query_fixtures), and a bearer
token's header."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from http_api.auth import issue_token
from query_api.cursor import TaskPageCursor
from query_api.repository import ActivityRow, TaskPageRow
from runtime.settings import AuthSettings, auth_settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeReadModel:
    def __init__(self) -> None:
        self.tasks: dict[UUID, list[dict[str, object]]] = {}
        self.users: dict[UUID, dict[str, object]] = {}
        self.fail: Exception | None = None

    def add_task(self, user: UUID, seconds: int, done: bool = False) -> dict[str, object]:
        task = {
            "id": str(uuid4()),
            "title": f"task at {seconds}",
            "done": done,
            "created_at": (T0 + timedelta(seconds=seconds)).isoformat(),
            "done_at": None,
            "version": 1,
        }
        self.tasks.setdefault(user, []).append(task)
        return task

    async def list_tasks(
        self, user_id: UUID, done: bool | None, after: TaskPageCursor | None, limit: int
    ) -> Sequence[TaskPageRow]:
        if self.fail:
            raise self.fail
        rows = [
            (json.dumps(t), datetime.fromisoformat(str(t["created_at"])), UUID(str(t["id"])))
            for t in self.tasks.get(user_id, [])
            if done is None or t["done"] == done
        ]
        rows.sort(key=lambda r: (r[1], r[2]), reverse=True)
        if after is not None:
            rows = [r for r in rows if (r[1], r[2]) < (after.created_at, after.id)]
        return rows[:limit]

    async def get_task(self, user_id: UUID, task_id: UUID) -> str | None:
        for t in self.tasks.get(user_id, []):
            if t["id"] == str(task_id):
                return json.dumps(t)
        return None

    async def get_me(self, user_id: UUID) -> str | None:
        user = self.users.get(user_id)
        return None if user is None else json.dumps(user)

    async def task_history(self, user_id: UUID, task_id: UUID) -> str | None:
        return None  # the history's SQL is tested against PostgreSQL (test_query_history.py)

    async def activity(
        self, user_id: UUID, before_position: int | None, limit: int
    ) -> Sequence[ActivityRow]:
        return []

    async def positions(self, user_ids: Sequence[UUID]) -> dict[UUID, int]:
        return {}

    async def changes_since(
        self, user_id: UUID, after: int, limit: int
    ) -> tuple[int, list[dict[str, object]]]:
        return 0, []  # the stream has its own tests (test_query_stream.py)


class FakeWaiter:
    def __init__(self, reached: bool = True) -> None:
        self.reached = reached
        self.calls: list[tuple[UUID, int, float]] = []

    async def wait_for(self, user_id: UUID, position: int, max_wait: float) -> bool:
        self.calls.append((user_id, position, max_wait))
        return self.reached


def bearer(user: UUID, settings: AuthSettings | None = None) -> dict[str, str]:
    token, _ = issue_token(user, settings or auth_settings())
    return {"Authorization": f"Bearer {token}"}
