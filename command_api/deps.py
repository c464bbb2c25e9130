"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from common.auth import get_auth_settings
from common.settings import AuthSettings
from event_store.application import TodoStore


async def get_store(request: Request) -> TodoStore:
    store: TodoStore = request.app.state.store
    return store


async def expected_version(
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> int | None:
    """`If-Match: 3` or the ETag form `If-Match: "3"`; anything else is the client's mistake."""
    if if_match is None:
        return None
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="If-Match must be a task version number"
        )
    return int(raw)


Store = Annotated[TodoStore, Depends(get_store)]
Auth = Annotated[AuthSettings, Depends(get_auth_settings)]
ExpectedVersion = Annotated[int | None, Depends(expected_version)]
