"""JWT issue/verify, shared by the command API (issues tokens) and the query API (checks them).

Signed and checked as contracts.tokens does every token of the project: HS256 only, pinned on
decode; the user id comes from `sub` and from nowhere else.

Both APIs check tokens with one dependency (`CurrentUserId`), through a TokenVerifier
(`app.state.tokens`): a client sends the same token on every request, and verifying its signature
once instead of every time was ~13 % of the command API's event loop (issue 12).
A verdict is remembered only until the token's `exp`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated
from uuid import UUID

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from contracts.tokens import sign, verified_user_id
from runtime.settings import AuthSettings, auth_settings


class InvalidTokenError(Exception):
    pass


def issue_token(user_id: UUID, settings: AuthSettings) -> tuple[str, int]:
    now = int(time.time())
    expires_in = settings.JWT_EXPIRES_SECONDS
    claims = {"sub": str(user_id), "iat": now, "exp": now + expires_in}
    return sign(claims, settings), expires_in


def verify_token(token: str, settings: AuthSettings) -> UUID:
    return verified_user_id(token, settings, refusal=InvalidTokenError, kind="token")


class TokenVerifier:
    """verify_token's verdicts, each remembered until the token expires (bounded: the oldest
    entry makes room). Only successes are kept: a bad token is checked again each time."""

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
        """The token's user; raises InvalidTokenError like verify_token."""
        known = self._known.get(token)
        if known is not None:
            user_id, expires_at = known
            if self._clock() < expires_at:
                return user_id
            self._known.pop(token, None)
            raise InvalidTokenError("token expired")
        user_id = verify_token(token, self._settings())
        claims = jwt.decode(token, options={"verify_signature": False})
        if len(self._known) >= self._max_entries:
            self._known.pop(next(iter(self._known)), None)  # the oldest entry
        self._known[token] = (user_id, float(claims["exp"]))
        return user_id


async def get_auth_settings() -> AuthSettings:
    # async (like every cheap dependency here) so FastAPI does not hop to a worker thread for it
    return auth_settings()


class BearerUserId(SecurityBase):
    """The one bearer-token dependency of both APIs: the user id of the request's
    `Authorization: Bearer <token>`, checked by the app's TokenVerifier (`app.state.tokens`);
    anything else is a 401 with `WWW-Authenticate: Bearer`.

    A security scheme itself (not a function depending on HTTPBearer), so that FastAPI declares
    it in OpenAPI (`HTTPBearer`, on every operation that uses it) while a request solves ONE
    dependency: the query API's reads are cheap enough for a second one to show. The header is
    read as HTTPBearer reads it (scheme, one space, the token stripped)."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel()
        self.scheme_name = "HTTPBearer"

    async def __call__(self, request: Request) -> UUID:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("missing bearer token")
        verifier: TokenVerifier = request.app.state.tokens
        try:
            return verifier.user_id(token)
        except InvalidTokenError as e:
            raise _unauthorized(str(e)) from e


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


current_user_id = BearerUserId()
CurrentUserId = Annotated[UUID, Depends(current_user_id)]
