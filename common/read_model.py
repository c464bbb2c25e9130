"""The read model: tables built by the projector from the public events, read by the query API and
the digest scheduler. Defined once here (SQLAlchemy Core); Alembic migrations own the DDL and a test
keeps the two equal.

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
  the later messages of its aggregate — until `dlq replay` (common.parking; not rebuilt).

Not read model, but in the same database and migration chain (so one `alembic upgrade head` and
one schema test cover them): `auth_throttle`, the command API's shared rate-limit state.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
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


users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
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
    Column("user_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True),
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
    Column("user_id", Uuid, nullable=False),
    Column("task_id", Uuid, nullable=False),
    Column("type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
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
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Sequenced dead letters (common.parking): per consumer group, the messages parked behind a poison
# message of their aggregate, in (topic, partition, offset) order, until `dlq replay` applies them.
# Not rebuilt: it is about Kafka messages, not the store (see docs/runbooks/dead-letters.md).
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("service", Text, nullable=False),
    Column("aggregate_id", Text, nullable=True),
    Column("event_type", Text, nullable=True),
    Column("kind", Text, nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=True),
    Column("headers", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("reason", Text, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Column("last_replay_error", Text, nullable=True),
    Index("ix_dead_letters_consumer_aggregate_id", "consumer", "aggregate_id"),
)

# The command API's login/registration limits (command_api/throttle.py), shared by its processes.
# One row per (scope, subject): `tat` is GCRA's "theoretical arrival time"; a row whose tat is in
# the past means "no recent hits" and may be purged. `subject` is a SHA-256 hex digest of the email
# or client address, so the table does not keep what people typed into the email field.
auth_throttle = Table(
    "auth_throttle",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("tat", DateTime(timezone=True), nullable=False),
    Index("ix_auth_throttle_tat", "tat"),
)

# The tables the rebuild replaces wholesale (projector_progress is about Kafka, not the store).
REBUILT_TABLES: tuple[Table, ...] = (users, tasks, task_events, user_positions)
