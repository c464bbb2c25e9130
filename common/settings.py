"""Typed settings, one class per concern. Every field reads the environment variable of the same
name (and `.env` when present), so `make run`, Docker and tests configure everything the same way.

Unsafe defaults (the dev JWT secret, the dev DB password) are refused when `ENVIRONMENT=prod`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "prod"]
DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"  # noqa: S105 - refused outside dev
DEV_DB_PASSWORD = "postgres"  # noqa: S105 - refused outside dev


class AppSettings(BaseSettings):
    """Base of every settings class: env vars of the same name, then `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)


class RuntimeSettings(AppSettings):
    ENVIRONMENT: Environment = "dev"
    LOG_LEVEL: str = "INFO"

    @property
    def is_dev(self) -> bool:
        return self.ENVIRONMENT in ("dev", "test")


class DatabaseSettings(AppSettings):
    ENVIRONMENT: Environment = "dev"
    POSTGRES_HOST: str = "127.0.0.1"
    POSTGRES_PORT: int = 5432
    POSTGRES_USER: str = "postgres"
    POSTGRES_PASSWORD: str = DEV_DB_PASSWORD
    POSTGRES_DB: str = "todo"
    POSTGRES_POOL_SIZE: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _refuse_dev_password_in_prod(self) -> Self:
        if self.ENVIRONMENT == "prod" and self.POSTGRES_PASSWORD == DEV_DB_PASSWORD:
            raise ValueError("POSTGRES_PASSWORD must be set to a real secret when ENVIRONMENT=prod")
        return self

    @property
    def conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.POSTGRES_HOST,
            port=self.POSTGRES_PORT,
            user=self.POSTGRES_USER,
            password=self.POSTGRES_PASSWORD,
            dbname=self.POSTGRES_DB,
        )

    @property
    def sqlalchemy_url(self) -> str:
        from sqlalchemy import URL

        return URL.create(
            "postgresql+psycopg",
            username=self.POSTGRES_USER,
            password=self.POSTGRES_PASSWORD,
            host=self.POSTGRES_HOST,
            port=self.POSTGRES_PORT,
            database=self.POSTGRES_DB,
        ).render_as_string(hide_password=False)


class KafkaSettings(AppSettings):
    KAFKA_BOOTSTRAP_SERVERS: str = "127.0.0.1:9092"
    KAFKA_TOPIC: str = "events"
    KAFKA_DLQ_TOPIC: str = "events.dlq"


class AuthSettings(AppSettings):
    ENVIRONMENT: Environment = "dev"
    JWT_SECRET: str = DEV_JWT_SECRET
    JWT_EXPIRES_SECONDS: int = Field(default=3600, ge=60)
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=16)

    @model_validator(mode="after")
    def _refuse_unsafe_values_in_prod(self) -> Self:
        if self.ENVIRONMENT == "prod":
            if self.JWT_SECRET == DEV_JWT_SECRET or len(self.JWT_SECRET) < 32:
                raise ValueError(
                    "JWT_SECRET must be a real secret of 32+ chars when ENVIRONMENT=prod"
                )
            if self.BCRYPT_ROUNDS < 12:
                raise ValueError("BCRYPT_ROUNDS must be at least 12 when ENVIRONMENT=prod")
        return self


class CommandApiSettings(AppSettings):
    COMMAND_API_HOST: str = "127.0.0.1"
    COMMAND_API_PORT: int = 8001
    # Commands arriving together are saved in one store transaction (group commit), up to this many.
    COMMAND_BATCH_MAX: int = Field(default=64, ge=1)
    # Longest a command waits for the store to record it; then 503 + Retry-After.
    COMMAND_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=300)


class QueryApiSettings(AppSettings):
    QUERY_API_HOST: str = "127.0.0.1"
    QUERY_API_PORT: int = 8002
    READ_YOUR_WRITES_TIMEOUT_SECONDS: float = Field(default=2.0, ge=0, le=30)


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


@lru_cache
def runtime_settings() -> RuntimeSettings:
    return RuntimeSettings()


@lru_cache
def database_settings() -> DatabaseSettings:
    return DatabaseSettings()


@lru_cache
def kafka_settings() -> KafkaSettings:
    return KafkaSettings()


@lru_cache
def auth_settings() -> AuthSettings:
    return AuthSettings()


class ConsumerSettings(AppSettings):
    """The poison policy's knobs (common.poison), shared by the relay, projector and mailer."""

    # An unexpected exception (a bug) is retried this many times, then the worker stops taking
    # messages and reports not-ready with the reason, until an operator restarts it.
    CONSUMER_BUG_RETRIES: int = Field(default=5, ge=0, le=1000)
    # Capped exponential backoff between retries (transient failures: forever; bugs: bounded).
    CONSUMER_RETRY_INITIAL_SECONDS: float = Field(default=0.1, gt=0, le=60)
    CONSUMER_RETRY_MAX_SECONDS: float = Field(default=5.0, gt=0, le=600)
