"""Bearer tokens for the query API: exactly common.auth's rules (verify_token: HS256 pinned, `sub`,
`iat`, `exp` required, expiry enforced; same 401 answers), with each token's verdict remembered
until the token expires. Reads are the hot path and a client sends the same token on every request:
verifying its signature once instead of every time is a large share of a query's CPU."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, HTTPException, Request, status

from common.auth import InvalidTokenError
from common.auth import TokenVerifier as TokenVerifier  # shared with the command API


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def current_user_id(request: Request) -> UUID:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("missing bearer token")
    verifier: TokenVerifier = request.app.state.tokens
    try:
        return verifier.user_id(token)
    except InvalidTokenError as e:
        raise _unauthorized(str(e)) from e


CurrentUserId = Annotated[UUID, Depends(current_user_id)]

# Declared on every route in OpenAPI (the check itself is the dependency above).
SECURITY: dict[str, Any] = {"security": [{"HTTPBearer": []}]}
SECURITY_SCHEMES: dict[str, Any] = {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
