"""The read model: tables built by the projector from the public events, read by the query API and
the digest scheduler. Declared once here (SQLAlchemy Core) and nowhere else: Alembic migrations own
the DDL and a test keeps them equal to this declaration; code derives its column lists, PostgreSQL
types and statements from it (column_names, pg_types, column_list, json_fields below; the
projector's row classes in projector.rows are checked against it at import).

- `users`, `tasks`: one row per aggregate. `version` is the aggregate version of the last event
  applied and `position` its store position; an event is applied only if it is the next version
  (see projector.handlers), which makes re-delivery and replay harmless.
- `tasks.deleted`: soft delete (a tombstone), so a late, older event never resurrects a deleted
  task. Every query filters `not deleted`.
- `task_events`: the history of every task, one row per task event applied to `tasks` (keyed by its
  store position, so a replay inserts nothing twice), with what it changed (`changes`, JSON);
  read by `GET /tasks/{id}/history` (per task, oldest first) and `GET /activity` (per user,
  newest first).
- `user_positions`: per user, the highest store position applied (read-your-writes).
- `projector_progress`: per Kafka partition, the last offset and store position applied; written in
  the same transaction as the rows, read by `python -m projector status`.
- `dead_letters`: per consumer group (projector, mailer), the parked messages — a poison message and
  the later messages of its aggregate — until `dlq replay` (consuming.parking; not rebuilt).

Not read model, but in the same database and migration chain (so one `alembic upgrade head` and
one schema test cover them): `auth_throttle`, the command API's shared rate-limit state, and
`scheduler_runs`, the digest scheduler's run ledger, and `processed_events`, the mailer's
idempotency record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

# Deterministic constraint names, so migrations, the rebuild's table copies and the swap agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# A user's timezone until they choose one (also the digests recorded before timezones existed).
DEFAULT_TIMEZONE = "UTC"

# Channel the projector NOTIFYs after each committed batch, for read-your-writes waiters.
PROGRESS_CHANNEL = "projection_progress"
# NOTIFY payloads are limited to 8000 bytes; a larger batch sends "*" ("re-check everyone").
_MAX_PROGRESS_PAYLOAD = 7900


def encode_progress(positions: Mapping[UUID, int] | None) -> str:
    """NOTIFY payload: "user:position,..." for the users a batch moved, or "*" for anyone."""
    if positions is None:
        return "*"
    text = ",".join(f"{user}:{position}" for user, position in positions.items())
    return text if len(text) <= _MAX_PROGRESS_PAYLOAD else "*"


def decode_progress(payload: str) -> dict[UUID, int] | None:
    """Inverse of encode_progress; None means "anyone may have moved"."""
    if not payload or payload == "*":
        return None
    result: dict[UUID, int] = {}
    for item in payload.split(","):
        user, _, position = item.partition(":")
        result[UUID(user)] = int(position)
    return result


TIMESTAMPTZ = DateTime(timezone=True)


SqlType = TypeEngine[Any] | type[TypeEngine[Any]]


def _not_null(**types: SqlType) -> list[Column[Any]]:
    """Plain NOT NULL columns, in the order given (a column with more to say is spelt out)."""
    return [Column(name, type_, nullable=False) for name, type_ in types.items()]


def _key(**types: SqlType) -> list[Column[Any]]:
    """The primary key's columns, in the order given."""
    return [Column(name, type_, primary_key=True) for name, type_ in types.items()]


def _nullable(**types: SqlType) -> list[Column[Any]]:
    return [Column(name, type_, nullable=True) for name, type_ in types.items()]


users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    *_not_null(email=Text, created_at=TIMESTAMPTZ, version=Integer, position=BigInteger),
    # Preferences (user.preferences_changed): an IANA zone name; the scheduler selects, per user,
    # whose local midnight has passed, and skips users with the digest off.
    Column("timezone", Text, nullable=False, server_default=DEFAULT_TIMEZONE),
    Column("digest_enabled", Boolean, nullable=False, server_default=true()),
    Index("ix_users_timezone_id", "timezone", "id"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Uuid, primary_key=True),
    *_not_null(user_id=Uuid, title=Text, done=Boolean, created_at=TIMESTAMPTZ),
    *_nullable(done_at=TIMESTAMPTZ),
    Column("version", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    Column("position", BigInteger, nullable=False),
    Index("ix_tasks_user_id", "user_id"),
    Index("ix_tasks_user_id_done", "user_id", "done", postgresql_where=text("NOT deleted")),
    # Keyset pagination of GET /tasks: newest first, ties broken by id.
    Index(
        "ix_tasks_user_id_created_at_id",
        "user_id",
        text("created_at DESC"),
        text("id DESC"),
        postgresql_where=text("NOT deleted"),
    ),
)

task_events = Table(
    "task_events",
    metadata,
    Column("position", BigInteger, primary_key=True),
    *_not_null(user_id=Uuid, task_id=Uuid, type=Text, occurred_at=TIMESTAMPTZ, version=Integer),
    Column("changes", JSONB, nullable=False),
    # A task's history, oldest first; a user's activity, newest first (keyset on position).
    Index("ix_task_events_task_id_position", "task_id", "position"),
    Index("ix_task_events_user_id_position", "user_id", text("position DESC")),
)

user_positions = Table(
    "user_positions",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("position", BigInteger, nullable=False),
)

projector_progress = Table(
    "projector_progress",
    metadata,
    *_key(topic=Text, partition=Integer),
    *_not_null(offset=BigInteger, position=BigInteger),
    Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=func.now()),
)

# Sequenced dead letters (consuming.parking): per consumer group, the messages parked behind a
# poison message of their aggregate, in (topic, partition, offset) order, until `dlq replay`
# applies them. Not rebuilt: it is about Kafka messages, not the store (see
# docs/runbooks/dead-letters.md).
dead_letters = Table(
    "dead_letters",
    metadata,
    *_key(consumer=Text, topic=Text, partition=Integer, offset=BigInteger),
    *_not_null(service=Text),
    *_nullable(aggregate_id=Text, event_type=Text),
    *_not_null(kind=Text),
    *_nullable(key=LargeBinary, value=LargeBinary),
    Column("headers", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    *_not_null(reason=Text, failed_at=TIMESTAMPTZ),
    *_nullable(last_replay_error=Text),
    Index("ix_dead_letters_consumer_aggregate_id", "consumer", "aggregate_id"),
)

# The command API's login/registration limits (command_api/throttle.py), shared by its processes.
# One row per (scope, subject): `tat` is GCRA's "theoretical arrival time"; a row whose tat is in
# the past means "no recent hits" and may be purged. `subject` is a SHA-256 hex digest of the email
# or client address, so the table does not keep what people typed into the email field.
auth_throttle = Table(
    "auth_throttle",
    metadata,
    *_key(scope=Text, subject=Text),
    Column("tat", TIMESTAMPTZ, nullable=False),
    Index("ix_auth_throttle_tat", "tat"),
)

# The digest scheduler's run ledger (scheduler/runs.py): per (local date, timezone, "*" = every
# user), when the batch started and completed and its counts.
scheduler_runs = Table(
    "scheduler_runs",
    metadata,
    Column("digest_date", Date, primary_key=True),
    Column("started_at", TIMESTAMPTZ, nullable=False, server_default=func.now()),
    *_nullable(completed_at=TIMESTAMPTZ),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    *_nullable(users=Integer, recorded=Integer, already_recorded=Integer, skipped=Integer),
    Column("timezone", Text, primary_key=True, server_default="*"),
)
# The mailer's idempotency record (mailer/): one row per digest event it has finished with.
processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("processed_at", TIMESTAMPTZ, nullable=False, server_default=func.now()),
)

# The tables the rebuild replaces wholesale (projector_progress is about Kafka, not the store).
REBUILT_TABLES: tuple[Table, ...] = (users, tasks, task_events, user_positions)


# --- what code derives from the declaration ------------------------------------------------------
# PostgreSQL's name for each column type used above: the casts of the projector's `unnest` arrays
# and the types of its binary COPY (psycopg's names). A type missing here fails at import.
_PG_TYPE_NAMES: dict[type[TypeEngine[Any]], str] = {
    Uuid: "uuid",
    Text: "text",
    Boolean: "bool",
    Integer: "int4",
    BigInteger: "int8",
    DateTime: "timestamptz",
    Date: "date",
    JSONB: "jsonb",
    LargeBinary: "bytea",
}


def column_names(table: Table) -> tuple[str, ...]:
    """The table's columns, in declaration order."""
    return tuple(column.name for column in table.columns)


def pg_types(table: Table, names: Sequence[str] | None = None) -> tuple[str, ...]:
    """PostgreSQL type names of these columns (all, by default), in that order."""
    columns = table.columns if names is None else [table.c[name] for name in names]
    return tuple(_PG_TYPE_NAMES[type(column.type)] for column in columns)


def column_list(table: Table, *names: str, alias: str = "") -> str:
    """SQL select list "a, b" (or "x.a, x.b") of columns the table declares: a query written
    against the declaration fails at import, not at its first run, when a column goes."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{table.c[name].name}" for name in names)


def json_fields(table: Table, *names: str, alias: str = "") -> str:
    """json_build_object arguments "'a', a, 'b', b" for columns the table declares (see
    column_list)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"'{table.c[name].name}', {prefix}{name}" for name in names)
