"""Bearer tokens for the query API: exactly common.auth's rules (verify_token: HS256 pinned, `sub`,
`iat`, `exp` required, expiry enforced; same 401 answers), with each token's verdict remembered
until the token expires. Reads are the hot path and a client sends the same token on every request:
verifying its signature once instead of every time is a large share of a query's CPU."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

import jwt
from fastapi import Depends, HTTPException, Request, status

from common.auth import InvalidTokenError, verify_token
from common.settings import AuthSettings


class TokenVerifier:
    def __init__(
        self,
        settings: Callable[[], AuthSettings],
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._max_entries = max_entries
        self._clock = clock
        self._known: dict[str, tuple[UUID, float]] = {}

    def __len__(self) -> int:
        return len(self._known)

    def user_id(self, token: str) -> UUID:
        """The token's user; raises InvalidTokenError like common.auth.verify_token."""
        known = self._known.get(token)
        if known is not None:
            user_id, expires_at = known
            if self._clock() < expires_at:
                return user_id
            del self._known[token]
            raise InvalidTokenError("token expired")
        user_id = verify_token(token, self._settings())
        claims = jwt.decode(token, options={"verify_signature": False})
        if len(self._known) >= self._max_entries:
            self._known.pop(next(iter(self._known)))  # the oldest entry
        self._known[token] = (user_id, float(claims["exp"]))
        return user_id


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
