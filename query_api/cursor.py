"""Page cursors: "<created_at in µs since the epoch>_<task id as 32 hex digits>" of the last item
shown. Opaque to clients, but with a format a regular expression describes exactly (declared in
OpenAPI as CURSOR_PATTERN): every string of that shape is a cursor the API accepts, and nothing else
is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

# 17 digits of microseconds reach past the year 5000: every such value is a valid datetime.
CURSOR_PATTERN = r"^[0-9]{1,17}_[0-9a-f]{32}$"
_CURSOR = re.compile(CURSOR_PATTERN, re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class InvalidCursorError(ValueError):
    pass


@dataclass(frozen=True)
class TaskPageCursor:
    created_at: datetime
    id: UUID


def encode_cursor(created_at: datetime, task_id: UUID) -> str:
    return f"{(created_at - _EPOCH) // _MICROSECOND}_{task_id.hex}"


def decode_cursor(token: str) -> TaskPageCursor:
    if _CURSOR.fullmatch(token) is None:
        raise InvalidCursorError("invalid cursor")
    micros, _, task_hex = token.partition("_")
    return TaskPageCursor(_EPOCH + int(micros) * _MICROSECOND, UUID(hex=task_hex))


# GET /activity pages by store position (unique, so no tie-breaker is needed): the position of the
# last event shown, newest first.
ACTIVITY_CURSOR_PATTERN = r"^[0-9]{1,18}$"
_ACTIVITY_CURSOR = re.compile(ACTIVITY_CURSOR_PATTERN, re.ASCII)


def encode_activity_cursor(position: int) -> str:
    return str(position)


def decode_activity_cursor(token: str) -> int:
    if _ACTIVITY_CURSOR.fullmatch(token) is None:
        raise InvalidCursorError("invalid cursor")
    return int(token)
