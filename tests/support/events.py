"""The fields every public event carries, filled for tests that build one event by hand and care
only about its own fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

OCCURRED_AT = datetime(2026, 11, 23, tzinfo=UTC)


def envelope_fields(position: int = 1) -> dict[str, Any]:
    """Fresh ids, a fixed time, and the first version of the aggregate at `position`."""
    return {
        "event_id": uuid4(),
        "occurred_at": OCCURRED_AT,
        "user_id": uuid4(),
        "position": position,
        "aggregate_version": 1,
    }
