"""JWT issue/verify, shared by the command API (issues tokens) and the query API (checks them).

HS256 only: the algorithm is pinned on decode, so a token signed with `none` or RS/HS confusion
is refused. The user id comes from `sub` and from nowhere else.
"""

from __future__ import annotations

import time
from typing import Annotated
from uuid import UUID

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.settings import AuthSettings, auth_settings

ALGORITHM = "HS256"


class InvalidTokenError(Exception):
    pass


def issue_token(user_id: UUID, settings: AuthSettings) -> tuple[str, int]:
    now = int(time.time())
    expires_in = settings.JWT_EXPIRES_SECONDS
    claims = {"sub": str(user_id), "iat": now, "exp": now + expires_in}
    return jwt.encode(
        claims, settings.JWT_SECRET.get_secret_value(), algorithm=ALGORITHM
    ), expires_in


def verify_token(token: str, settings: AuthSettings) -> UUID:
    try:
        claims = jwt.decode(
            token,
            settings.JWT_SECRET.get_secret_value(),
            algorithms=[ALGORITHM],
            options={"require": ["sub", "iat", "exp"]},
        )
        return UUID(str(claims["sub"]))
    except jwt.ExpiredSignatureError as e:
        raise InvalidTokenError("token expired") from e
    except (jwt.PyJWTError, ValueError) as e:
        raise InvalidTokenError("invalid token") from e


_bearer = HTTPBearer(auto_error=False)


async def get_auth_settings() -> AuthSettings:
    # async (like every cheap dependency here) so FastAPI does not hop to a worker thread for it
    return auth_settings()


async def current_user_id(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: Annotated[AuthSettings, Depends(get_auth_settings)],
) -> UUID:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    try:
        return verify_token(credentials.credentials, settings)
    except InvalidTokenError as e:
        raise _unauthorized(str(e)) from e


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


CurrentUserId = Annotated[UUID, Depends(current_user_id)]
