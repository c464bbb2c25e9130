"""Users' preferences in the read model: `users.timezone` (IANA name, default UTC) and
`users.digest_enabled` (default true), filled by the projector from `user.preferences_changed`;
existing rows take the defaults, which is what their users had before preferences existed.
`ix_users_timezone_id`: the scheduler pages through the users of the zones whose midnight passed.

The digest run ledger becomes per (date, timezone): `scheduler_runs.timezone` (`*` = a batch of
every user, which is what every existing row was), part of the primary key.

Revision ID: 0006_user_preferences
Revises: 0004_auth_throttle
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_user_preferences"
down_revision: str | None = "0005_task_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("timezone", sa.Text(), nullable=False, server_default="UTC"))
    op.add_column(
        "users",
        sa.Column("digest_enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.create_index("ix_users_timezone_id", "users", ["timezone", "id"])
    op.add_column(
        "scheduler_runs", sa.Column("timezone", sa.Text(), nullable=False, server_default="*")
    )
    op.drop_constraint("pk_scheduler_runs", "scheduler_runs", type_="primary")
    op.create_primary_key("pk_scheduler_runs", "scheduler_runs", ["digest_date", "timezone"])


def downgrade() -> None:
    op.execute("DELETE FROM scheduler_runs WHERE timezone <> '*'")
    op.drop_constraint("pk_scheduler_runs", "scheduler_runs", type_="primary")
    op.create_primary_key("pk_scheduler_runs", "scheduler_runs", ["digest_date"])
    op.drop_column("scheduler_runs", "timezone")
    op.drop_index("ix_users_timezone_id", table_name="users")
    op.drop_column("users", "digest_enabled")
    op.drop_column("users", "timezone")
