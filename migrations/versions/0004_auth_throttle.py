"""Login/registration rate limits of the command API, shared by all its processes.

- `auth_throttle`: one row per (scope, subject) with GCRA's theoretical arrival time `tat` (see
  command_api/throttle.py); `tat` is indexed for the purge of expired rows.

Revision ID: 0004_auth_throttle
Revises: 0003_dead_letters
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_auth_throttle"
down_revision: str | None = "0003_dead_letters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_throttle",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("tat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject", name="pk_auth_throttle"),
    )
    op.create_index("ix_auth_throttle_tat", "auth_throttle", ["tat"])


def downgrade() -> None:
    op.drop_index("ix_auth_throttle_tat", table_name="auth_throttle")
    op.drop_table("auth_throttle")
