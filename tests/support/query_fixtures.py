"""The fixtures of the query API's unit tests, loaded by `pytest_plugins` in the test modules that
use them: the fake read model and waiter (tests.support.query_fakes), and a client of the real app
on them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from query_api.bootstrap import create_app
from query_api.settings import QueryApiSettings
from tests.support.query_fakes import FakeReadModel, FakeWaiter


@pytest.fixture
def reads() -> FakeReadModel:
    return FakeReadModel()


@pytest.fixture
def waiter() -> FakeWaiter:
    return FakeWaiter()


@pytest.fixture
def client(reads: FakeReadModel, waiter: FakeWaiter) -> Iterator[TestClient]:
    settings = QueryApiSettings(READ_YOUR_WRITES_TIMEOUT_SECONDS=1.5)
    with TestClient(create_app(reads, waiter, settings=settings)) as c:
        yield c
