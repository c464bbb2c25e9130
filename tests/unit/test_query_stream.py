"""GET /stream's message flow over fake adapters (the same generator production runs): changes in
store order with their positions as ids, resume after Last-Event-ID, heartbeats, the per-user
limit and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from http_api.auth import issue_token
from query_api.bootstrap import create_app
from query_api.settings import QueryApiSettings
from query_api.stream import StreamLimits, _events
from runtime.settings import auth_settings

ADA, BOB = uuid4(), uuid4()


class FakeChanges:
    """Task rows per user with the position of their last change, and each user's position."""

    def __init__(self) -> None:
        self.rows: dict[UUID, dict[str, dict[str, Any]]] = {}
        self.position: dict[UUID, int] = {}
        self.moved = asyncio.Event()

    def change(self, user: UUID, position: int, task_id: str, deleted: bool = False) -> None:
        task = {"id": task_id, "title": f"at {position}", "done": False, "version": 1}
        self.rows.setdefault(user, {})[task_id] = {
            "position": position,
            "deleted": deleted,
            "task": task,
        }
        self.position[user] = position
        self.moved.set()

    async def positions(self, user_ids: Sequence[UUID]) -> dict[UUID, int]:
        return {u: self.position[u] for u in user_ids if u in self.position}

    async def changes_since(
        self, user_id: UUID, after: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        changed = sorted(
            (c for c in self.rows.get(user_id, {}).values() if c["position"] > after),
            key=lambda c: c["position"],
        )
        return self.position.get(user_id, 0), changed[:limit]


class FakeWaiter:
    def __init__(self, changes: FakeChanges) -> None:
        self._changes = changes

    async def wait_for(self, user_id: UUID, position: int, max_wait: float) -> bool:
        try:
            async with asyncio.timeout(max_wait):
                while self._changes.position.get(user_id, 0) < position:
                    self._changes.moved.clear()
                    await self._changes.moved.wait()
            return True
        except TimeoutError:
            return False


def fake_request(changes: FakeChanges, heartbeat: float = 5.0) -> Any:
    state = SimpleNamespace(
        settings=QueryApiSettings(QUERY_STREAM_HEARTBEAT_SECONDS=heartbeat),
        read_model=changes,
        waiter=FakeWaiter(changes),
    )
    return SimpleNamespace(app=SimpleNamespace(state=state))


async def take(stream: AsyncIterator[str], n: int) -> list[str]:
    return [await asyncio.wait_for(anext(stream), 2) for _ in range(n)]


def test_changes_arrive_in_store_order_with_their_positions_and_deletions() -> None:
    async def scenario() -> list[str]:
        changes = FakeChanges()
        changes.change(ADA, 3, "old")
        stream = _events(fake_request(changes), ADA, None, lambda: None)
        first = await take(stream, 2)  # the retry hint, and where the stream starts: "now"
        changes.change(ADA, 5, "t1")
        changes.change(ADA, 6, "t2")
        changes.change(ADA, 7, "t1", deleted=True)
        return first + await take(stream, 2)

    retry, ready, t2, t1_deleted = asyncio.run(scenario())
    assert retry == "retry: 2000\n\n"
    assert ready == "id: 3\nevent: ready\ndata: {}\n\n"
    assert t2.startswith("id: 6\nevent: task\ndata: ") and '"id": "t2"' in t2
    assert t1_deleted == 'id: 7\nevent: task_deleted\ndata: {"id": "t1"}\n\n'


def test_a_stream_resumed_after_last_event_id_gets_exactly_what_it_missed() -> None:
    async def scenario() -> list[str]:
        changes = FakeChanges()
        for position, task in [(1, "a"), (2, "b"), (3, "c")]:
            changes.change(ADA, position, task)
        stream = _events(fake_request(changes), ADA, 1, lambda: None)
        return await take(stream, 3)

    _, b, c = asyncio.run(scenario())
    assert b.startswith("id: 2\n") and c.startswith("id: 3\n")


def test_another_users_changes_never_reach_a_stream() -> None:
    async def scenario() -> list[str]:
        changes = FakeChanges()
        stream = _events(fake_request(changes, heartbeat=0.2), ADA, 0, lambda: None)
        await take(stream, 1)
        changes.change(BOB, 1, "bobs")
        changes.change(ADA, 2, "adas")
        return await take(stream, 1)

    (message,) = asyncio.run(scenario())
    assert message.startswith("id: 2\n") and "bobs" not in message


def test_an_idle_stream_sends_heartbeat_comments_and_releases_its_slot_when_closed() -> None:
    released: list[bool] = []

    async def scenario() -> list[str]:
        stream = _events(
            fake_request(FakeChanges(), heartbeat=0.05), ADA, 0, lambda: released.append(True)
        )
        messages = await take(stream, 3)
        await stream.aclose()
        return messages

    assert asyncio.run(scenario())[1:] == [": keepalive\n\n", ": keepalive\n\n"]
    assert released == [True]


def test_open_streams_are_limited_per_user_and_a_release_counts_once() -> None:
    limits = StreamLimits(per_user=2)
    first = limits.open(ADA)
    limits.open(ADA)
    limits.open(BOB)
    with pytest.raises(Exception) as refused:
        limits.open(ADA)
    assert getattr(refused.value, "status_code", None) == 429
    first()
    first()
    assert limits.open_streams(ADA) == 1
    limits.open(ADA)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(FakeChanges(), FakeWaiter(FakeChanges()))) as c:  # type: ignore[arg-type]
        yield c


def test_a_last_event_id_that_is_not_a_position_is_a_400(client: TestClient) -> None:
    token, _ = issue_token(ADA, auth_settings())
    answer = client.get(
        "/stream", headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "12abc"}
    )
    assert answer.status_code == 400
    assert answer.json() == {"detail": "Last-Event-ID must be a store position (ASCII digits)"}


def test_a_stream_needs_a_bearer_token(client: TestClient) -> None:
    answer = client.get("/stream")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
