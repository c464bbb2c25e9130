"""The query API's read-your-writes over fake adapters: a read with X-Min-Position waits for the
user's position (within the configured bound), is marked stale when it is not reached, and is one
`wait` observation; a malformed header is a 400."""

from __future__ import annotations

from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from tests.support.query_fakes import FakeReadModel, FakeWaiter, bearer

pytest_plugins = ["tests.support.query_fixtures"]  # reads, waiter, client


def test_without_x_min_position_the_query_answers_at_once(
    client: TestClient, waiter: FakeWaiter
) -> None:
    client.get("/tasks", headers=bearer(uuid4()))
    assert waiter.calls == []


def test_x_min_position_waits_for_that_users_position_within_the_configured_bound(
    client: TestClient, waiter: FakeWaiter
) -> None:
    user = uuid4()
    response = client.get("/tasks", headers={**bearer(user), "X-Min-Position": "42"})
    assert response.status_code == 200
    assert waiter.calls == [(user, 42, 1.5)]
    assert "X-Stale" not in response.headers


@pytest.mark.parametrize("path", ["/tasks", "/me", f"/tasks/{uuid4()}"])
def test_when_the_position_is_not_reached_in_time_the_answer_is_marked_stale(
    client: TestClient, waiter: FakeWaiter, reads: FakeReadModel, path: str
) -> None:
    waiter.reached = False
    user = uuid4()
    response = client.get(path, headers={**bearer(user), "X-Min-Position": "7"})
    assert response.headers["X-Stale"] == "true"


@pytest.mark.parametrize(
    "value", [b"soon", b"-1", b"+7", b"7_0", b"1e3", b"3.0", b"\xb2", "\u0663".encode()]
)
def test_a_malformed_x_min_position_is_refused_with_400(
    client: TestClient, waiter: FakeWaiter, value: bytes
) -> None:
    headers: dict[str, str | bytes] = {**bearer(uuid4()), "X-Min-Position": value}
    response = client.get("/tasks", headers=headers)
    assert response.status_code == 400
    assert response.json() == {"detail": "X-Min-Position must be a store position (ASCII digits)"}
    assert waiter.calls == []


def test_each_read_with_x_min_position_is_one_wait_observation_and_other_reads_none(
    client: TestClient,
) -> None:
    from runtime import metrics

    def waits() -> float:
        metrics.EVENT_HOP_SECONDS.labels("wait")  # the series exists from the first look
        (family,) = metrics.EVENT_HOP_SECONDS.collect()
        return next(
            x.value
            for x in family.samples
            if x.name.endswith("_count") and x.labels["hop"] == "wait"
        )

    user = uuid4()
    before = waits()
    client.get("/tasks", headers=bearer(user))
    assert waits() == before, "no X-Min-Position: no wait"
    client.get("/tasks", headers={**bearer(user), "X-Min-Position": "7"})
    assert waits() == before + 1
