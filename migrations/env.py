"""Alembic environment: one PostgreSQL database shared with the event store.

The URL is DatabaseSettings().sqlalchemy_url (POSTGRES_* variables), unless a caller passes one in
`config.attributes["sqlalchemy_url"]` (tests do, for their throwaway database) or an open
connection in `config.attributes["connection"]`.

Autogenerate compares against contracts.read_model.metadata and only looks at tables declared in it:
the event store's own tables (created by eventsourcing), the relay checkpoint and tables of other
services are never proposed for dropping.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from contracts.read_model import metadata
from runtime.settings import DatabaseSettings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table":
        return name in target_metadata.tables
    return True


def _url() -> str:
    url = config.attributes.get("sqlalchemy_url")
    return str(url) if url else DatabaseSettings().sqlalchemy_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        include_object=_include_object,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
