"""PATCH /me: the signed-in user's preferences (timezone, daily digest on/off), recorded as a
`User.PreferencesChanged` event. GET /me is the query API's (read side)."""

from __future__ import annotations

from typing import Self
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from command_api.deps import Store
from command_api.responses import position_header, set_position
from command_api.schemas import PatchBody
from contracts.timezones import TimezoneName
from event_store.domain.model import User
from http_api.auth import CurrentUserId
from http_api.openapi import error_response

router = APIRouter(tags=["account"])


class PreferencesUpdate(PatchBody):
    timezone: TimezoneName | None = None
    digest_enabled: StrictBool | None = Field(
        default=None, description="false: no daily digest email (true turns it back on)"
    )


class PreferencesPublic(BaseModel):
    id: UUID
    timezone: str = Field(description="IANA time zone name; the digest comes after its midnight")
    digest_enabled: bool

    @classmethod
    def of(cls, user: User) -> Self:
        return cls(id=user.id, timezone=user.timezone, digest_enabled=user.digest_enabled)


@router.patch(
    "/me",
    response_model=PreferencesPublic,
    responses={
        200: {"headers": position_header("GET /me", "the preferences were already so")},
        400: error_response("The body is not UTF-8 JSON"),
        404: error_response("The token's user is not registered here"),
    },
)
async def change_preferences(
    body: PreferencesUpdate, user_id: CurrentUserId, store: Store, response: Response
) -> PreferencesPublic:
    """Change the timezone and/or switch the daily digest on or off; the answer is both, after."""
    saved = await run_in_threadpool(
        store.change_preferences,
        user_id,
        timezone=body.timezone,
        digest_enabled=body.digest_enabled,
    )
    set_position(response, saved.position)
    return PreferencesPublic.of(saved.aggregate)
