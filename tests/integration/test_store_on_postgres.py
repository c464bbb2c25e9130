"""The event store's test case (tests/support/store_contract.py) on PostgreSQL, as every process
but the unit tests runs it (event_store.postgres_queries: one fresh database per test); and what
only PostgreSQL has: the digest preference read on a caller's own async connection."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import psycopg
import pytest

from event_store.application import TodoStore, store_env
from event_store.digest_preference import DigestPreferenceReader
from runtime.settings import DatabaseSettings
from tests.support.store_contract import StoreContract

pytestmark = pytest.mark.integration


class TestStoreOnPostgres(StoreContract):
    @pytest.fixture
    def backend_env(self, db_settings: DatabaseSettings) -> dict[str, str]:
        return store_env(db_settings)

    def test_the_digest_preference_read_on_an_async_connection_of_ones_own_is_the_stores(
        self, store: TodoStore, db_settings: DatabaseSettings
    ) -> None:
        reader = DigestPreferenceReader(store)
        ada, bob = (store.register_user(f"{n}@example.com", "h").aggregate.id for n in "ab")
        store.change_preferences(bob, digest_enabled=False)
        store.change_preferences(bob, timezone="Asia/Kathmandu")  # a later change keeps it off
        users = [ada, bob, uuid4()]

        async def read() -> list[bool]:
            conninfo = db_settings.conninfo
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                return [await reader.digest_enabled(conn, user) for user in users]

        assert asyncio.run(read()) == [True, False, True], "unknown to the store: sent"
        assert [store.digest_enabled(user) for user in users] == [True, False, True]
