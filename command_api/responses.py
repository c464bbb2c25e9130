from __future__ import annotations

from typing import Any

from fastapi import Response

POSITION_HEADER = "X-Event-Position"


def position_header(read: str, absent_when: str) -> dict[str, dict[str, Any]]:
    """The OpenAPI declaration of the X-Event-Position header of an answer: what `read` takes it
    as X-Min-Position, and when the header is absent (nothing recorded)."""
    description = f"Store position of the event recorded (for X-Min-Position on {read}); absent"
    return {
        POSITION_HEADER: {
            "description": f"{description} when {absent_when}",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    }


def set_position(response: Response, position: int | None) -> None:
    """Tell the client the store position of its last event (for read-your-writes on the read
    side). Absent when the command was a no-op and recorded nothing."""
    if position is not None:
        response.headers[POSITION_HEADER] = str(position)


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'
