"""Alembic owns the read model's DDL: `alembic upgrade head` builds it from nothing, exactly as
contracts.read_model declares it."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from contracts.read_model import metadata
from runtime.settings import DatabaseSettings
from tests.support.read_side import alembic_config, migrate

pytestmark = pytest.mark.integration


def schema_differences(db: DatabaseSettings) -> list[object]:
    engine = create_engine(db.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_object": lambda obj, name, type_, reflected, other: (
                        type_ != "table" or name in metadata.tables
                    ),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def table_names(db: DatabaseSettings) -> set[str]:
    with psycopg.connect(db.conninfo) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}


def test_upgrade_head_on_an_empty_database_builds_exactly_the_declared_read_model(
    db_settings: DatabaseSettings,
) -> None:
    migrate(db_settings)
    assert set(metadata.tables) <= table_names(db_settings)
    assert schema_differences(db_settings) == []


def test_the_read_model_migration_downgrades_cleanly_and_upgrades_again(
    db_settings: DatabaseSettings,
) -> None:
    migrate(db_settings, "0001_read_model")
    command.downgrade(alembic_config(db_settings), "base")
    assert not set(metadata.tables) & table_names(db_settings)
    migrate(db_settings)
    assert schema_differences(db_settings) == []
