"""Daily digest: the mailer's idempotency record and the scheduler's run ledger.

- `processed_events`: one row per digest event the mailer has finished with (sent, or dead-lettered
  after a permanent SMTP refusal). A redelivered event whose id is here is skipped.
- `scheduler_runs`: one row per digest date; `completed_at` set when the batch finished, so a
  scheduler that was down at 00:00 catches up on start (see docs/digest.md).

Revision ID: 0002_mailer
Revises: 0001_read_model
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_mailer"
down_revision: str | None = "0001_read_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_processed_events"),
    )
    op.create_table(
        "scheduler_runs",
        sa.Column("digest_date", sa.Date(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("users", sa.Integer(), nullable=True),
        sa.Column("recorded", sa.Integer(), nullable=True),
        sa.Column("already_recorded", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("digest_date", name="pk_scheduler_runs"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_runs")
    op.drop_table("processed_events")
