"""The command API's own settings: its address, group commit, load shedding and the /auth
throttle (shared settings, such as the database's and the JWT's, are runtime.settings)."""

from __future__ import annotations

import os
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated

from pydantic import Field, IPvAnyNetwork, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from runtime.settings import AppSettings, in_prod, load_or_exit

# Networks: "10.0.0.0/8" or a single address; comma-separated in the environment.
ProxyNetworks = Annotated[tuple[IPvAnyNetwork, ...], NoDecode]


class AuthThrottleSettings(AppSettings):
    """How the command API keeps /auth abuse in check (see command_api/throttle.py): rate limits
    kept in PostgreSQL (shared by every command API process) and the bounded bcrypt pool."""

    # Every limit below counts over this sliding window (GCRA: `limit` per window, as a burst).
    AUTH_THROTTLE_WINDOW_SECONDS: float = Field(default=60.0, gt=0, le=86_400)
    # Failed logins for one email, whatever the address (slows a brute force of one account).
    AUTH_LOGIN_FAILURES_PER_EMAIL: int = Field(default=5, ge=1)
    # Failed logins from one client address, whatever the email (slows credential stuffing).
    AUTH_LOGIN_FAILURES_PER_ADDRESS: int = Field(default=50, ge=1)
    # Registrations from one client address (generous: an office, a classroom).
    AUTH_REGISTRATIONS_PER_ADDRESS: int = Field(default=100, ge=1)
    # Peers whose X-Forwarded-For / X-Real-IP is believed (the gateway); anyone else's is ignored.
    TRUSTED_PROXIES: ProxyNetworks = (IPv4Network("127.0.0.1/32"), IPv6Network("::1/128"))
    # Threads hashing/checking passwords (bcrypt holds a core each): a login flood queues here
    # instead of taking every core from task commands. 0 = half the CPU cores, at least 1.
    BCRYPT_WORKERS: int = Field(default=0, ge=0, le=256)
    # Nice value of those threads (Linux; 0 = same priority as the rest): under CPU contention
    # the event loop, the group-commit writer and PostgreSQL go first, bcrypt gets what is left.
    BCRYPT_NICE: int = Field(default=10, ge=0, le=19)

    @field_validator("TRUSTED_PROXIES", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("TRUSTED_PROXIES")
    @classmethod
    def _refuse_trusting_everyone_in_prod(
        cls, value: tuple[IPv4Network | IPv6Network, ...], info: ValidationInfo
    ) -> tuple[IPv4Network | IPv6Network, ...]:
        if in_prod(info) and any(net.prefixlen == 0 for net in value):
            raise ValueError("must not trust every address when ENVIRONMENT=prod")
        return value

    @property
    def bcrypt_workers(self) -> int:
        return self.BCRYPT_WORKERS or max(1, (os.cpu_count() or 2) // 2)


class CommandApiSettings(AppSettings):
    COMMAND_API_HOST: str = "127.0.0.1"
    COMMAND_API_PORT: int = 8001
    # Commands arriving together are saved in one store transaction (group commit), up to this many.
    COMMAND_BATCH_MAX: int = Field(default=64, ge=1)
    # Longest a command waits for the store to record it; then 503 + Retry-After.
    COMMAND_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=300)
    # Past this many requests in progress, answer 503 + Retry-After at once
    # (http_api.load_shedding): at ~500 commands/s that is ~0.5 s of queue, far below
    # COMMAND_TIMEOUT_SECONDS.
    COMMAND_API_MAX_IN_FLIGHT: int = Field(default=256, ge=1, le=100_000)


@lru_cache
def auth_throttle_settings() -> AuthThrottleSettings:
    return load_or_exit(AuthThrottleSettings)
