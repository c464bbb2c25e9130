"""One-click unsubscribe from the daily digest (RFC 8058), from the link in every digest email.

No login: the signed, single-purpose token in the URL (contracts/unsubscribe.py) names the user.
`GET` only shows a confirmation page with a button, because link scanners and mail previews fetch
GETs: a GET never changes anything. `POST` (the button, or the mail client's one-click
`List-Unsubscribe=One-Click` request) turns the digest off: a `User.PreferencesChanged` event.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from command_api.deps import Auth, Store
from command_api.responses import set_position
from contracts.unsubscribe import InvalidUnsubscribeTokenError, verify_unsubscribe_token
from http_api.openapi import error_response
from runtime.settings import AuthSettings

router = APIRouter(tags=["account"])

Token = Annotated[
    str,
    Query(
        min_length=1,
        max_length=2000,
        description="The signed token from the digest email's unsubscribe link",
    ),
]
_BAD_TOKEN: dict[int | str, dict[str, Any]] = {
    403: error_response("The token is malformed, forged, expired or not an unsubscribe token"),
}
_UNKNOWN_USER: dict[int | str, dict[str, Any]] = {
    404: error_response("The token's user is not registered here"),
}


class Unsubscribed(BaseModel):
    digest_enabled: bool
    detail: str


def _user_of(token: str, settings: AuthSettings) -> UUID:
    try:
        return verify_unsubscribe_token(token, settings)
    except InvalidUnsubscribeTokenError as e:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(e)) from e


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Unsubscribe from the daily digest</title></head>
<body>
<h1>Unsubscribe from the daily digest?</h1>
<p>You will no longer receive the daily TODO digest email. You can turn it back on in the
app's settings.</p>
<form method="post" action="?token={token}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>
</body></html>
"""


@router.get(
    "/unsubscribe",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **_BAD_TOKEN},
)
async def confirm_unsubscribe(token: Token, settings: Auth) -> HTMLResponse:
    """A confirmation page with an Unsubscribe button (POSTs to this URL). Changes nothing."""
    _user_of(token, settings)  # a broken link says so now, not after the click
    return HTMLResponse(_PAGE.format(token=escape(token, quote=True)))


@router.post("/unsubscribe", response_model=Unsubscribed, responses={**_BAD_TOKEN, **_UNKNOWN_USER})
async def unsubscribe(
    token: Token, settings: Auth, store: Store, response: Response
) -> Unsubscribed:
    """Turn the token's user's daily digest off (idempotent); the body, if any, is ignored."""
    user_id = _user_of(token, settings)
    saved = await run_in_threadpool(store.change_preferences, user_id, digest_enabled=False)
    set_position(response, saved.position)
    return Unsubscribed(digest_enabled=False, detail="you will receive no more daily digests")
