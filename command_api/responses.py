from __future__ import annotations

from fastapi import Response

POSITION_HEADER = "X-Event-Position"


def set_position(response: Response, position: int | None) -> None:
    """Tell the client the store position of its last event (for read-your-writes on the read
    side). Absent when the command was a no-op and recorded nothing."""
    if position is not None:
        response.headers[POSITION_HEADER] = str(position)


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'
