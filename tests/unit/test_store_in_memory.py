"""The event store's test case (tests/support/store_contract.py) on eventsourcing's in-memory
POPO recorder: the backend the command API's unit tests run on."""

from __future__ import annotations

import pytest

from event_store.store_queries import Shard
from tests.support.store_contract import StoreContract


class TestStoreInMemory(StoreContract):
    @pytest.fixture
    def backend_env(self) -> dict[str, str]:
        return {}  # no persistence module: eventsourcing's POPO recorder


def test_a_shard_outside_the_split_is_refused() -> None:
    with pytest.raises(ValueError, match="not a shard"):
        Shard(3, 3)
