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
from types import TracebackType
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

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


def in_prod(info: ValidationInfo) -> bool:
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
        if in_prod(info) and value.get_secret_value() in ("", DEV_DB_PASSWORD):
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
    # A consumer (projector, mailer) sends its offsets at most this often; 0 = after every batch.
    # A crash re-delivers at most this long's batches, which the consumers skip as duplicates.
    KAFKA_OFFSET_COMMIT_INTERVAL_SECONDS: float = Field(default=0.1, ge=0, le=10)


class AuthSettings(AppSettings):
    JWT_SECRET: SecretStr = SecretStr(DEV_JWT_SECRET)
    JWT_EXPIRES_SECONDS: int = Field(default=3600, ge=60)
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=16)

    @field_validator("JWT_SECRET")
    @classmethod
    def _refuse_weak_secret_in_prod(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        secret = value.get_secret_value()
        if in_prod(info) and (secret == DEV_JWT_SECRET or len(secret) < JWT_SECRET_MIN_LENGTH):
            rule = f"must be a real secret of {JWT_SECRET_MIN_LENGTH}+ characters"
            raise ValueError(f"{rule} when ENVIRONMENT=prod")
        return value

    @field_validator("BCRYPT_ROUNDS")
    @classmethod
    def _refuse_weak_cost_in_prod(cls, value: int, info: ValidationInfo) -> int:
        if in_prod(info) and value < 12:
            raise ValueError("must be at least 12 when ENVIRONMENT=prod")
        return value


class RelaySettings(AppSettings):
    RELAY_BATCH_SIZE: int = Field(default=500, ge=1)
    # Timer poll as a safety net beside LISTEN/NOTIFY (a dead LISTEN connection must not stall us).
    RELAY_POLL_INTERVAL_SECONDS: float = Field(default=1.0, gt=0)
    RELAY_NAME: str = "kafka-relay"
    # The published position is written to relay_checkpoints at most this often (0 = after every
    # batch): a crash re-sends at most this long's events, which the consumers skip as duplicates.
    RELAY_CHECKPOINT_INTERVAL_SECONDS: float = Field(default=0.1, ge=0, le=10)


HealthPort = Annotated[int, Field(ge=0, le=65535)]  # 0: no health endpoint


class HealthSettings(AppSettings):
    """Ports of the worker processes' /health and /ready endpoints (0 turns one off)."""

    HEALTH_HOST: str = "127.0.0.1"
    RELAY_HEALTH_PORT: HealthPort = 8011
    PROJECTOR_HEALTH_PORT: HealthPort = 8012
    SCHEDULER_HEALTH_PORT: HealthPort = 8013
    MAILER_HEALTH_PORT: HealthPort = 8014
    # A worker whose loop has not turned for this long answers /ready with 503.
    HEALTH_STALE_SECONDS: float = Field(default=60.0, gt=0)


def load_or_exit[S: AppSettings](settings_class: type[S]) -> S:
    """The settings of a process: on a refused value, report it and exit (see exit_refused)."""
    try:
        return settings_class()
    except (ValidationError, SettingsError) as e:
        exit_refused(e)


def read_once[S: AppSettings](settings_class: type[S]) -> Callable[[], S]:
    """The accessor of a process's settings of one class: read (or refused) at the first call,
    the same object after."""
    return lru_cache(maxsize=None)(lambda: load_or_exit(settings_class))


runtime_settings = read_once(RuntimeSettings)
database_settings = read_once(DatabaseSettings)
kafka_settings = read_once(KafkaSettings)
auth_settings = read_once(AuthSettings)


class ConsumerSettings(AppSettings):
    """The poison policy's knobs (consuming.poison), shared by the relay, projector and mailer."""

    # An unexpected exception (a bug) is retried this many times, then the worker stops taking
    # messages and reports not-ready with the reason, until an operator restarts it.
    CONSUMER_BUG_RETRIES: int = Field(default=5, ge=0, le=1000)
    # Capped exponential backoff between retries (transient failures: forever; bugs: bounded).
    CONSUMER_RETRY_INITIAL_SECONDS: float = Field(default=0.1, gt=0, le=60)
    CONSUMER_RETRY_MAX_SECONDS: float = Field(default=5.0, gt=0, le=600)
