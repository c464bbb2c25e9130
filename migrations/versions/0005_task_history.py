"""Task history: `task_events`, one row per task event applied to `tasks`, keyed by its store
position (contracts.read_model). Filled by the projector from here on; `python -m projector rebuild`
fills it for the events recorded before this migration.

Revision ID: 0005_task_history
Revises: 0004_auth_throttle
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_task_history"
down_revision: str | None = "0004_auth_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_events",
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changes", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_task_events"),
    )
    op.create_index("ix_task_events_task_id_position", "task_events", ["task_id", "position"])
    op.create_index(
        "ix_task_events_user_id_position", "task_events", ["user_id", sa.text("position DESC")]
    )


def downgrade() -> None:
    op.drop_index("ix_task_events_user_id_position", table_name="task_events")
    op.drop_index("ix_task_events_task_id_position", table_name="task_events")
    op.drop_table("task_events")
