"""Typed settings, one class per concern. Every field reads the environment variable of the same
name (and `.env` when present), so `make run`, Docker and tests configure everything the same way.

Unsafe values (the dev JWT secret, the dev DB password, a weak bcrypt cost...) are refused when
`ENVIRONMENT=prod`. A refused setting is reported the same way by every process, from here: one
line per problem on stderr naming the setting and the rule (never its value, no traceback), then
exit code 78 (EX_CONFIG). Constructors raise pydantic's ValidationError (tests check it); the
accessors below (`database_settings()`...) and an uncaught one in a process's main thread turn it
into that message and exit code (exit_refused).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from types import TracebackType
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

Environment = Literal["dev", "test", "prod"]
DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"  # noqa: S105 - refused outside dev
DEV_DB_PASSWORD = "postgres"  # noqa: S105 - refused outside dev
JWT_SECRET_MIN_LENGTH = 32
# sysexits.h EX_CONFIG: "something was found in an unconfigured or misconfigured state".
EXIT_REFUSED_SETTINGS = 78


def refusal_problems(error: ValidationError | SettingsError) -> list[str]:
    """One "NAME: rule" line per problem, never the refused value (pydantic's own message echoes
    the input, secrets included)."""
    if isinstance(error, SettingsError):  # a value that could not even be parsed (names the field)
        return [str(error)]
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in item["loc"])
        rule = item["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {rule}" if name else rule)
    return problems


def exit_refused(error: ValidationError | SettingsError) -> NoReturn:
    for problem in refusal_problems(error):
        print(f"refused setting {problem}", file=sys.stderr)
    sys.stderr.flush()
    # os._exit, not sys.exit: settings may be first read inside a server's startup hook (uvicorn's
    # lifespan), which catches SystemExit and logs it with a traceback. A process reads its
    # settings before it holds anything that needs cleaning up.
    os._exit(EXIT_REFUSED_SETTINGS)


_SETTINGS_CLASSES: set[str] = set()  # names of AppSettings' subclasses (ValidationError.title)


def _install_refusal_hook() -> None:
    """Any process that imports this module reports refused settings that escape its main thread
    (e.g. `MailerSettings()` in `mailer.__main__`) as a refusal, not as a traceback."""
    previous: Callable[[type[BaseException], BaseException, TracebackType | None], Any]
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if isinstance(error, SettingsError) or (
            isinstance(error, ValidationError) and error.title in _SETTINGS_CLASSES
        ):
            exit_refused(error)
        previous(kind, error, tb)

    sys.excepthook = hook


_install_refusal_hook()


class AppSettings(BaseSettings):
    """Base of every settings class: env vars of the same name, then `.env`. Invalid values raise
    pydantic's ValidationError, which a process reports through exit_refused.

    ENVIRONMENT is declared here, once: every concern's class refuses its own unsafe values when it
    is `prod`, and a base class's fields are validated first, so its validators can read it."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    ENVIRONMENT: Environment = "dev"

    @property
    def is_dev(self) -> bool:
        return self.ENVIRONMENT in ("dev", "test")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _SETTINGS_CLASSES.add(cls.__name__)


def _in_prod(info: ValidationInfo) -> bool:
    """For field validators: ENVIRONMENT is AppSettings' field, so it is validated (and in
    `info.data`) before the fields of every subclass that depend on it."""
    return info.data.get("ENVIRONMENT") == "prod"


class RuntimeSettings(AppSettings):
    LOG_LEVEL: str = "INFO"


class DatabaseSettings(AppSettings):
    POSTGRES_HOST: str = "127.0.0.1"
    POSTGRES_PORT: int = 5432
    POSTGRES_USER: str = "postgres"
    POSTGRES_PASSWORD: SecretStr = SecretStr(DEV_DB_PASSWORD)
    POSTGRES_DB: str = "todo"
    POSTGRES_POOL_SIZE: int = Field(default=10, ge=1)

    @field_validator("POSTGRES_PASSWORD")
    @classmethod
    def _refuse_dev_password_in_prod(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if _in_prod(info) and value.get_secret_value() in ("", DEV_DB_PASSWORD):
            raise ValueError("must be set to a real secret when ENVIRONMENT=prod")
        return value

    @property
    def conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.POSTGRES_HOST,
            port=self.POSTGRES_PORT,
            user=self.POSTGRES_USER,
            password=self.POSTGRES_PASSWORD.get_secret_value(),
            dbname=self.POSTGRES_DB,
        )

    @property
    def sqlalchemy_url(self) -> str:
        from sqlalchemy import URL

        return URL.create(
            "postgresql+psycopg",
            username=self.POSTGRES_USER,
            password=self.POSTGRES_PASSWORD.get_secret_value(),
            host=self.POSTGRES_HOST,
            port=self.POSTGRES_PORT,
            database=self.POSTGRES_DB,
        ).render_as_string(hide_password=False)


class KafkaSettings(AppSettings):
    KAFKA_BOOTSTRAP_SERVERS: str = "127.0.0.1:9092"
    KAFKA_TOPIC: str = "events"
    KAFKA_DLQ_TOPIC: str = "events.dlq"


class AuthSettings(AppSettings):
    JWT_SECRET: SecretStr = SecretStr(DEV_JWT_SECRET)
    JWT_EXPIRES_SECONDS: int = Field(default=3600, ge=60)
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=16)

    @field_validator("JWT_SECRET")
    @classmethod
    def _refuse_weak_secret_in_prod(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        secret = value.get_secret_value()
        if _in_prod(info) and (secret == DEV_JWT_SECRET or len(secret) < JWT_SECRET_MIN_LENGTH):
            rule = f"must be a real secret of {JWT_SECRET_MIN_LENGTH}+ characters"
            raise ValueError(f"{rule} when ENVIRONMENT=prod")
        return value

    @field_validator("BCRYPT_ROUNDS")
    @classmethod
    def _refuse_weak_cost_in_prod(cls, value: int, info: ValidationInfo) -> int:
        if _in_prod(info) and value < 12:
            raise ValueError("must be at least 12 when ENVIRONMENT=prod")
        return value


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
        if _in_prod(info) and any(net.prefixlen == 0 for net in value):
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
    # Past this many requests in progress, answer 503 + Retry-After at once (common.load_shedding):
    # at ~500 commands/s that is ~0.5 s of queue, far below COMMAND_TIMEOUT_SECONDS.
    COMMAND_API_MAX_IN_FLIGHT: int = Field(default=256, ge=1, le=100_000)


class QueryApiSettings(AppSettings):
    QUERY_API_HOST: str = "127.0.0.1"
    QUERY_API_PORT: int = 8002
    READ_YOUR_WRITES_TIMEOUT_SECONDS: float = Field(default=2.0, ge=0, le=30)
    # Read from this PostgreSQL streaming replica (a hot standby of POSTGRES_HOST:POSTGRES_PORT,
    # same user, password and database) instead of the primary; empty: read from the primary.
    # Read-your-writes still holds: positions are confirmed on the replica (query_api.freshness).
    # One replica per process: behind a balancer spreading connections over several replicas,
    # a position seen on one is not yet on the others.
    QUERY_REPLICA_HOST: str = ""
    QUERY_REPLICA_PORT: int = Field(default=5432, ge=1, le=65535)
    # GET /stream: a comment this often on an idle stream (keeps proxies from closing it), and at
    # most this many open streams per user (tabs and devices; more answer 429).
    QUERY_STREAM_HEARTBEAT_SECONDS: float = Field(default=15.0, gt=0, le=300)
    QUERY_STREAMS_PER_USER: int = Field(default=20, ge=1, le=1000)

    @property
    def reads_from_replica(self) -> bool:
        return bool(self.QUERY_REPLICA_HOST)

    def read_database(self, primary: DatabaseSettings) -> DatabaseSettings:
        """Where the queries go: the replica when one is set, else the primary itself."""
        if not self.reads_from_replica:
            return primary
        host, port = self.QUERY_REPLICA_HOST, self.QUERY_REPLICA_PORT
        return primary.model_copy(update={"POSTGRES_HOST": host, "POSTGRES_PORT": port})


class RelaySettings(AppSettings):
    RELAY_BATCH_SIZE: int = Field(default=500, ge=1)
    # Timer poll as a safety net beside LISTEN/NOTIFY (a dead LISTEN connection must not stall us).
    RELAY_POLL_INTERVAL_SECONDS: float = Field(default=1.0, gt=0)
    RELAY_NAME: str = "kafka-relay"


class HealthSettings(AppSettings):
    """Ports of the worker processes' /health and /ready endpoints (0 turns one off)."""

    HEALTH_HOST: str = "127.0.0.1"
    RELAY_HEALTH_PORT: int = Field(default=8011, ge=0, le=65535)
    PROJECTOR_HEALTH_PORT: int = Field(default=8012, ge=0, le=65535)
    SCHEDULER_HEALTH_PORT: int = Field(default=8013, ge=0, le=65535)
    MAILER_HEALTH_PORT: int = Field(default=8014, ge=0, le=65535)
    # A worker whose loop has not turned for this long answers /ready with 503.
    HEALTH_STALE_SECONDS: float = Field(default=60.0, gt=0)


def load_or_exit[S: AppSettings](settings_class: type[S]) -> S:
    """The settings of a process: on a refused value, report it and exit (see exit_refused)."""
    try:
        return settings_class()
    except (ValidationError, SettingsError) as e:
        exit_refused(e)


@lru_cache
def runtime_settings() -> RuntimeSettings:
    return load_or_exit(RuntimeSettings)


@lru_cache
def database_settings() -> DatabaseSettings:
    return load_or_exit(DatabaseSettings)


@lru_cache
def kafka_settings() -> KafkaSettings:
    return load_or_exit(KafkaSettings)


@lru_cache
def auth_settings() -> AuthSettings:
    return load_or_exit(AuthSettings)


@lru_cache
def auth_throttle_settings() -> AuthThrottleSettings:
    return load_or_exit(AuthThrottleSettings)


class ConsumerSettings(AppSettings):
    """The poison policy's knobs (common.poison), shared by the relay, projector and mailer."""

    # An unexpected exception (a bug) is retried this many times, then the worker stops taking
    # messages and reports not-ready with the reason, until an operator restarts it.
    CONSUMER_BUG_RETRIES: int = Field(default=5, ge=0, le=1000)
    # Capped exponential backoff between retries (transient failures: forever; bugs: bounded).
    CONSUMER_RETRY_INITIAL_SECONDS: float = Field(default=0.1, gt=0, le=60)
    CONSUMER_RETRY_MAX_SECONDS: float = Field(default=5.0, gt=0, le=600)
