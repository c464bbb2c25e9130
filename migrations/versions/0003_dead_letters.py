"""Sequenced dead letters: `dead_letters`, the messages each consumer group (projector, mailer)
parked — a poison message and, behind it, the later messages of the same aggregate — until an
operator replays them (`python -m projector|mailer dlq replay`, docs/runbooks/dead-letters.md).

Revision ID: 0003_dead_letters
Revises: 0002_mailer
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_dead_letters"
down_revision: str | None = "0002_mailer"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("aggregate_id", sa.Text(), nullable=True),
        sa.Column("event_type", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_replay_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition", "offset", name="pk_dead_letters"),
    )
    op.create_index(
        "ix_dead_letters_consumer_aggregate_id", "dead_letters", ["consumer", "aggregate_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_consumer_aggregate_id", table_name="dead_letters")
    op.drop_table("dead_letters")
