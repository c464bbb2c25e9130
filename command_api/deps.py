"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from event_store.application import TodoStore
from http_api.auth import get_auth_settings
from runtime.settings import AuthSettings

# `3`, or the ETag forms `"3"` / `W/"3"` (what the ETag header gives back). ASCII digits only:
# str.isdigit() would also take "²" or "٣", which int() then refuses.
IF_MATCH_PATTERN = r'^(?:[0-9]{1,18}|(?:W/)?"[0-9]{1,18}")$'
_IF_MATCH = re.compile(IF_MATCH_PATTERN, re.ASCII)


async def get_store(request: Request) -> TodoStore:
    store: TodoStore = request.app.state.store
    return store


async def expected_version(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="The task version the change is based on (its ETag); 409 if the task"
            ' has moved on. Anything but `<digits>`, `"<digits>"` or `W/"<digits>"` is a 400.',
            # Declared for clients; checked below so that a bad value is a 400, not a 422.
            json_schema_extra={"pattern": IF_MATCH_PATTERN},
        ),
    ] = None,
) -> int | None:
    if if_match is None:
        return None
    if _IF_MATCH.fullmatch(if_match.strip()) is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail='If-Match must be a task version: digits, optionally as an ETag ("3")',
        )
    return int(if_match.strip().removeprefix("W/").strip('"'))


Store = Annotated[TodoStore, Depends(get_store)]
Auth = Annotated[AuthSettings, Depends(get_auth_settings)]
ExpectedVersion = Annotated[int | None, Depends(expected_version)]
