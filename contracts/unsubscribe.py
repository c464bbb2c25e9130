"""One-click unsubscribe tokens: the link in every digest email (mailer) that the command API
honours without a login.

Signed like a login token (contracts.tokens) but a token of its own kind: audience
`todo:unsubscribe` required (a login token has no audience, so it is refused here; and PyJWT
refuses an unsubscribe token where a login token is expected, its audience being unexpected
there). It can do one thing only: turn the daily digest of `sub` off. Its times come from the
digest event, so composing the same email twice gives the same bytes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote, urlencode
from uuid import UUID

from contracts.tokens import sign, verified_user_id
from runtime.settings import AuthSettings

AUDIENCE = "todo:unsubscribe"
# Unsubscribe links keep working long after the email arrived (RFC 8058 asks for that).
VALIDITY = timedelta(days=90)
PATH = "/api/unsubscribe"


class InvalidUnsubscribeTokenError(Exception):
    pass


def issue_unsubscribe_token(user_id: UUID, issued_at: datetime, settings: AuthSettings) -> str:
    claims = {
        "sub": str(user_id),
        "aud": AUDIENCE,
        "iat": int(issued_at.timestamp()),
        "exp": int((issued_at + VALIDITY).timestamp()),
    }
    return sign(claims, settings)


def verify_unsubscribe_token(token: str, settings: AuthSettings) -> UUID:
    return verified_user_id(
        token,
        settings,
        refusal=InvalidUnsubscribeTokenError,
        kind="unsubscribe link",
        audience=AUDIENCE,
    )


def unsubscribe_url(public_base_url: str, token: str) -> str:
    """`<PUBLIC_BASE_URL>/api/unsubscribe?token=…` (the gateway routes it to the command API)."""
    return f"{public_base_url.rstrip('/')}{PATH}?{urlencode({'token': token})}"


def unsubscribe_mailto(address: str, token: str) -> str:
    """The `mailto:` alternative RFC 2369 clients may use (the subject carries the token)."""
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"
