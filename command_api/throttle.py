"""Rate limits of /auth/login and /auth/register, shared by every command API process through
PostgreSQL (table `auth_throttle`, declared in contracts/read_model.py, migration 0004).

Why not a library: `limits`/`slowapi` keep their state in memory, Redis or Memcached, none of which
this system runs, and have no PostgreSQL storage; a counter here is one SQL statement per check.

The algorithm is GCRA (the "generic cell rate algorithm" of ATM networks, as in redis-cell): a key
allowed `limit` hits per `window` stores one timestamp, its theoretical arrival time `tat`. A hit
at `now` is allowed when `max(tat, now) + window/limit <= now + window`, and then moves `tat` by
`window/limit`. This is a sliding window (no burst of 2x at a fixed window's edge) and the wait
until the next allowed hit (Retry-After) falls out of `tat` exactly.

Login counts failures, not attempts, yet must not let parallel guesses overshoot the limit: each
attempt *takes* a hit for its email and its address before bcrypt runs (atomically, row-locked, so
200 parallel guesses at one account get 5 through, not 200), and a successful login gives them
back. Successful logins of many users from one address therefore never add up to a limit.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from command_api.settings import AuthThrottleSettings

Network = IPv4Network | IPv6Network


class Scope(StrEnum):
    LOGIN_FAILURES_PER_EMAIL = "login-failures-per-email"
    LOGIN_FAILURES_PER_ADDRESS = "login-failures-per-address"
    REGISTRATIONS_PER_ADDRESS = "registrations-per-address"


_REFUSAL = {
    Scope.LOGIN_FAILURES_PER_EMAIL: "too many failed logins for this email",
    Scope.LOGIN_FAILURES_PER_ADDRESS: "too many failed logins from this address",
    Scope.REGISTRATIONS_PER_ADDRESS: "too many registrations from this address",
}


@dataclass(frozen=True)
class Key:
    scope: Scope
    value: str  # the normalized email, or the client address

    @property
    def subject(self) -> str:
        # Hashed: the table never holds what people typed into the email field (sometimes their
        # password) nor addresses in clear. An operator unblocks one with
        # DELETE FROM auth_throttle WHERE subject = encode(sha256('<value>'), 'hex').
        return hashlib.sha256(self.value.encode()).hexdigest()


class ThrottledError(Exception):
    """A limit is reached: answer 429 with Retry-After."""

    def __init__(self, scope: Scope, retry_after: int) -> None:
        super().__init__(f"{_REFUSAL[scope]}; retry in {retry_after} s")
        self.scope = scope
        self.retry_after = retry_after


# One statement: take a hit for every key that is under its limit (the conditional upsert locks
# the row, so concurrent takes never overshoot), and report for each key whether it was taken and
# how far its tat is ahead of now (read from the statement's snapshot, for Retry-After).
_TAKE = """
WITH wanted AS (
    SELECT * FROM unnest(%(scopes)s::text[], %(subjects)s::text[], %(emissions)s::float8[])
        AS w(scope, subject, emission)
),
taken AS (
    INSERT INTO auth_throttle AS t (scope, subject, tat)
    SELECT scope, subject, now() + make_interval(secs => emission) FROM wanted
    ON CONFLICT (scope, subject) DO UPDATE
        SET tat = greatest(t.tat, now()) + (excluded.tat - now())
        WHERE greatest(t.tat, now()) + (excluded.tat - now())
            <= now() + make_interval(secs => %(window)s)
    RETURNING t.scope, t.subject
)
SELECT w.scope, k.scope IS NOT NULL AS taken,
       coalesce(extract(epoch FROM t.tat - now()), 0)::float8 AS ahead
FROM wanted w
LEFT JOIN taken k USING (scope, subject)
LEFT JOIN auth_throttle t USING (scope, subject)
"""

_GIVE_BACK = """
UPDATE auth_throttle AS t SET tat = t.tat - make_interval(secs => w.emission)
FROM unnest(%(scopes)s::text[], %(subjects)s::text[], %(emissions)s::float8[])
    AS w(scope, subject, emission)
WHERE t.scope = w.scope AND t.subject = w.subject
"""

# A row whose tat has passed says nothing more than a missing row.
_PURGE = "DELETE FROM auth_throttle WHERE tat < now()"


Hit = tuple[str, str, float]  # (scope, subject, emission seconds)


class HitCounters(Protocol):
    """Where the keys' theoretical arrival times live: PostgreSQL in production (shared by every
    process); memory for unit tests, through the same AuthThrottle."""

    async def take(self, hits: Sequence[Hit], window: float) -> list[tuple[str, bool, float]]:
        """Per hit: (scope, taken, seconds its tat was ahead of now before this call)."""

    async def give_back(self, hits: Sequence[Hit]) -> None: ...

    async def purge_expired(self) -> int: ...


class PostgresHitCounters:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @staticmethod
    def _params(hits: Sequence[Hit], window: float = 0.0) -> dict[str, Any]:
        return {
            "scopes": [h[0] for h in hits],
            "subjects": [h[1] for h in hits],
            "emissions": [h[2] for h in hits],
            "window": window,
        }

    async def take(self, hits: Sequence[Hit], window: float) -> list[tuple[str, bool, float]]:
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_TAKE, self._params(hits, window))).fetchall()
        return [(str(scope), bool(taken), float(ahead)) for scope, taken, ahead in rows]

    async def give_back(self, hits: Sequence[Hit]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(_GIVE_BACK, self._params(hits))

    async def purge_expired(self) -> int:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_PURGE)
            return int(cursor.rowcount)


class InMemoryHitCounters:
    """The same GCRA arithmetic as the SQL above, for one process (unit tests)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tat: dict[tuple[str, str], float] = {}

    async def take(self, hits: Sequence[Hit], window: float) -> list[tuple[str, bool, float]]:
        now, result = self._clock(), []
        for scope, subject, emission in hits:
            old = self._tat.get((scope, subject))
            tat = max(old or now, now) + emission
            taken = old is None or tat <= now + window
            if taken:
                self._tat[scope, subject] = tat
            result.append((scope, taken, 0.0 if old is None else old - now))
        return result

    async def give_back(self, hits: Sequence[Hit]) -> None:
        for scope, subject, emission in hits:
            if (scope, subject) in self._tat:
                self._tat[scope, subject] -= emission

    async def purge_expired(self) -> int:
        now = self._clock()
        expired = [key for key, tat in self._tat.items() if tat < now]
        for key in expired:
            del self._tat[key]
        return len(expired)


class AuthThrottle:
    def __init__(self, counters: HitCounters, settings: AuthThrottleSettings) -> None:
        self._counters = counters
        self._window = settings.AUTH_THROTTLE_WINDOW_SECONDS
        self._limits = {
            Scope.LOGIN_FAILURES_PER_EMAIL: settings.AUTH_LOGIN_FAILURES_PER_EMAIL,
            Scope.LOGIN_FAILURES_PER_ADDRESS: settings.AUTH_LOGIN_FAILURES_PER_ADDRESS,
            Scope.REGISTRATIONS_PER_ADDRESS: settings.AUTH_REGISTRATIONS_PER_ADDRESS,
        }

    def _emission(self, scope: Scope) -> float:
        """Seconds one hit keeps a key busy."""
        return self._window / self._limits[scope]

    def _hits(self, keys: Sequence[Key]) -> list[Hit]:
        return [(k.scope.value, k.subject, self._emission(k.scope)) for k in keys]

    async def take(self, *keys: Key) -> None:
        """One hit for every key, or none: raises ThrottledError (and gives back what it took)
        if any key is at its limit."""
        rows = await self._counters.take(self._hits(keys), self._window)
        refused = [(Scope(scope), ahead) for scope, taken, ahead in rows if not taken]
        if not refused:
            return
        taken_keys = [k for k in keys if k.scope not in {scope for scope, _ in refused}]
        if taken_keys:
            await self.give_back(*taken_keys)
        scope, ahead = max(refused, key=lambda r: r[1] + self._emission(r[0]))
        # Allowed again once max(tat, now) + emission <= now + window.
        wait = ahead + self._emission(scope) - self._window
        raise ThrottledError(scope, max(1, math.ceil(wait)))

    async def give_back(self, *keys: Key) -> None:
        await self._counters.give_back(self._hits(keys))

    async def purge_expired(self) -> int:
        return await self._counters.purge_expired()


def client_address(request: Request, trusted: Sequence[Network]) -> str:
    """The address a request comes from. Behind trusted proxies (the gateway's nginx appends the
    address it saw to X-Forwarded-For and sets X-Real-IP), the rightmost X-Forwarded-For hop that
    is not itself a trusted proxy: hops to its left are whatever the client chose to send. From an
    untrusted peer, forwarding headers are ignored (anyone could send them).

    uvicorn's own proxy-header handling (FORWARDED_ALLOW_IPS, 127.0.0.1 by default) may already
    have put that rightmost hop in place of the peer; it is then an untrusted peer here and kept:
    the same answer. Trusting more proxies is done with TRUSTED_PROXIES (and, if uvicorn should
    agree, FORWARDED_ALLOW_IPS)."""
    peer = request.client.host if request.client else ""
    if not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    hops = [h for h in hops if h]
    if not hops:
        real_ip = request.headers.get("x-real-ip", "").strip()
        return real_ip if _parse(real_ip) is not None else peer
    for hop in reversed(hops):
        if _parse(hop) is None:
            return peer  # a malformed chain: fall back to the proxy we do trust
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0]  # every hop is a trusted proxy: the client sits on a trusted network


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _is_trusted(text: str, trusted: Sequence[Network]) -> bool:
    address = _parse(text)
    return address is not None and any(address in network for network in trusted)
