"""POST /auth/register and POST /auth/login, rate limited (command_api/throttle.py) and with bcrypt
on its own bounded pool (command_api/passwords.py).

Both routes are async: the store's blocking calls go to Starlette's threadpool only for the
milliseconds they take, and bcrypt's ~250 ms never occupies a thread that task routes share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from psycopg_pool import AsyncConnectionPool
from starlette.concurrency import run_in_threadpool

from command_api.deps import Auth, Store
from command_api.passwords import PasswordHasher
from command_api.responses import set_position
from command_api.schemas import TokenPublic, UserCreate, UserLogin, UserPublic
from command_api.settings import AuthThrottleSettings, auth_throttle_settings
from command_api.throttle import (
    AuthThrottle,
    HitCounters,
    Key,
    Network,
    PostgresHitCounters,
    Scope,
    ThrottledError,
    client_address,
)
from event_store.domain.model import normalize_email
from http_api.auth import issue_token
from http_api.openapi import error_response
from runtime.settings import DatabaseSettings, auth_settings, database_settings

log = logging.getLogger(__name__)


THROTTLED: dict[int | str, dict[str, Any]] = {
    429: error_response(
        "Too many attempts: failed logins per email or per client address, or registrations per"
        " client address, over AUTH_THROTTLE_WINDOW_SECONDS",
        {"Retry-After": "Seconds until the limit lets this request through again"},
    )
}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: error_response(
        "Unknown email or wrong password (the same answer, in the same time)",
        {"WWW-Authenticate": "`Bearer`"},
    )
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: error_response("The email is already registered")}


@dataclass(frozen=True)
class AuthGuard:
    throttle: AuthThrottle
    hasher: PasswordHasher
    trusted_proxies: tuple[Network, ...]

    def address_of(self, request: Request) -> str:
        return client_address(request, self.trusted_proxies)


@asynccontextmanager
async def auth_guard_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Merged into the app's lifespan (after it): the throttle's counters — injected
    (`app.state.auth_counters`, unit tests) or in PostgreSQL, on the store's database
    (`app.state.database`, set by create_app) — and the bcrypt pool."""
    limits = auth_throttle_settings()
    counters: HitCounters | None = getattr(app.state, "auth_counters", None)
    pool: AsyncConnectionPool[Any] | None = None
    if counters is None:
        db: DatabaseSettings = getattr(app.state, "database", None) or database_settings()
        pool = AsyncConnectionPool[Any](
            db.conninfo,
            min_size=1,
            max_size=db.POSTGRES_POOL_SIZE,
            kwargs={"autocommit": True},
            timeout=5.0,  # PostgreSQL away: fail fast (503) rather than hold the login for 30 s
            open=False,
            name="auth-throttle",
        )
        await pool.open(wait=False)
        counters = PostgresHitCounters(pool)
    hasher = PasswordHasher(
        auth_settings().BCRYPT_ROUNDS, limits.bcrypt_workers, nice=limits.BCRYPT_NICE
    )
    throttle = AuthThrottle(counters, limits)
    app.state.auth_guard = AuthGuard(throttle, hasher, limits.TRUSTED_PROXIES)
    purger = asyncio.create_task(_purge_forever(throttle, limits))
    try:
        yield
    finally:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
        hasher.close()
        if pool is not None:
            await pool.close()


async def _purge_forever(throttle: AuthThrottle, limits: AuthThrottleSettings) -> None:
    """Expired rows carry no information; every process purges now and then (harmless twice)."""
    while True:
        await asyncio.sleep(max(300.0, limits.AUTH_THROTTLE_WINDOW_SECONDS))
        try:
            await throttle.purge_expired()
        except Exception:  # the database may be away for a while; the next round retries
            log.warning("auth throttle purge failed", exc_info=True)


async def get_guard(request: Request) -> AuthGuard:
    guard: AuthGuard = request.app.state.auth_guard
    return guard


Guard = Annotated[AuthGuard, Depends(get_guard)]

router = APIRouter(prefix="/auth", tags=["auth"], lifespan=auth_guard_lifespan)


def _too_many(error: ThrottledError) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=str(error),
        headers={"Retry-After": str(error.retry_after)},
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={**CONFLICT, **THROTTLED},
)
async def register(
    body: UserCreate, request: Request, store: Store, guard: Guard, response: Response
) -> UserPublic:
    try:
        await guard.throttle.take(Key(Scope.REGISTRATIONS_PER_ADDRESS, guard.address_of(request)))
    except ThrottledError as e:
        raise _too_many(e) from None
    password_hash = await guard.hasher.hash(body.password)
    saved = await run_in_threadpool(store.register_user, body.email, password_hash, body.timezone)
    set_position(response, saved.position)
    return UserPublic.of(saved.aggregate)


@router.post("/login", response_model=TokenPublic, responses={**UNAUTHORIZED, **THROTTLED})
async def login(
    body: UserLogin, request: Request, store: Store, settings: Auth, guard: Guard
) -> TokenPublic:
    keys = (
        Key(Scope.LOGIN_FAILURES_PER_EMAIL, normalize_email(body.email)),
        Key(Scope.LOGIN_FAILURES_PER_ADDRESS, guard.address_of(request)),
    )
    try:
        await guard.throttle.take(*keys)  # counted as a failure until it proves otherwise
    except ThrottledError as e:
        raise _too_many(e) from None
    user = await run_in_threadpool(store.find_user_by_email, body.email)
    if not await guard.hasher.verify(body.password, user.password_hash if user else None):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="invalid email or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    assert user is not None  # verify() is False without a hash
    await guard.throttle.give_back(*keys)
    token, expires_in = issue_token(user.id, settings)
    return TokenPublic(access_token=token, expires_in=expires_in)
