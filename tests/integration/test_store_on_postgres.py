"""The event store's test case (tests/support/store_contract.py) on PostgreSQL, as every process
but the unit tests runs it (event_store.postgres_queries: one fresh database per test)."""

from __future__ import annotations

import pytest

from event_store.application import store_env
from runtime.settings import DatabaseSettings
from tests.support.store_contract import StoreContract

pytestmark = pytest.mark.integration


class TestStoreOnPostgres(StoreContract):
    @pytest.fixture
    def backend_env(self, db_settings: DatabaseSettings) -> dict[str, str]:
        return store_env(db_settings)
