"""The project's signed tokens, login (http_api.auth) and unsubscribe (contracts.unsubscribe)
alike: JWTs signed with JWT_SECRET, HS256 pinned on decode (a token signed with `none`, or RS/HS
confusion, is refused), the user id in `sub` and from nowhere else."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import jwt

from runtime.settings import AuthSettings

ALGORITHM = "HS256"


def sign(claims: dict[str, Any], settings: AuthSettings) -> str:
    return jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm=ALGORITHM)


def verified_user_id(
    token: str,
    settings: AuthSettings,
    *,
    refusal: type[Exception],
    kind: str,
    audience: str | None = None,
) -> UUID:
    """`sub` of a token with `iat`, `exp` and, when one is expected, `aud`; anything else raises
    `refusal` ("<kind> expired" or "invalid <kind>"). A token with an audience is refused where
    none is expected, so one kind of token never passes for the other."""
    required = ["sub", "iat", "exp", *(["aud"] if audience else [])]
    try:
        claims = jwt.decode(
            token,
            settings.JWT_SECRET.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": required},
        )
        return UUID(str(claims["sub"]))
    except jwt.ExpiredSignatureError as e:
        raise refusal(f"{kind} expired") from e
    except (jwt.PyJWTError, ValueError) as e:
        raise refusal(f"invalid {kind}") from e
