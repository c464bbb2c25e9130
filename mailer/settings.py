"""Mailer settings (environment variable = field name, see runtime.settings.AppSettings).

SMTP_* point at Mailjet's SMTP relay in production (in-v3.mailjet.com:587, STARTTLS, API key and
secret as username/password) and at the local sink (infra/smtp-sink.sh) in development.
"""

from __future__ import annotations

import re
from email import errors, policy
from email.headerregistry import Address
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from runtime.settings import AppSettings

FaultPoint = Literal["", "after_send", "before_commit"]


class MailerSettings(AppSettings):
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = Field(default=1025, ge=1, le=65535)
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: SecretStr = SecretStr("")
    # Upgrade the connection with STARTTLS (required to send credentials in production).
    SMTP_STARTTLS: bool = False
    SMTP_SENDER: str = "TODO <no-reply@todo.localhost>"
    SMTP_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)

    # Kafka consumer group; with MAILER_INSTANCE_ID set, static membership: a restarted mailer
    # takes its partitions back at once instead of waiting for the old session to time out.
    MAILER_GROUP_ID: str = "mailer"
    MAILER_INSTANCE_ID: str = ""
    # Messages polled (and offsets committed) per batch.
    MAILER_BATCH_SIZE: int = Field(default=500, ge=1, le=10_000)
    # Transient SMTP failures: exponential backoff from INITIAL to MAX seconds; after ATTEMPTS
    # tries the batch is rewound (never committed) and retried, backoff kept, forever.
    MAILER_RETRY_INITIAL_SECONDS: float = Field(default=0.5, gt=0)
    MAILER_RETRY_MAX_SECONDS: float = Field(default=60.0, gt=0)
    MAILER_SEND_ATTEMPTS: int = Field(default=5, ge=1)
    # Link in the email to the web app.
    MAILER_APP_URL: str = "http://127.0.0.1:8080/"
    # Where people reach the gateway from their mail client: builds the one-click unsubscribe
    # link, <PUBLIC_BASE_URL>/api/unsubscribe?token=… (contracts/unsubscribe.py).
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8080"
    # TEST-ONLY fault injection: pause forever at this point so a test can SIGKILL the process.
    MAILER_FAULT_PAUSE: FaultPoint = ""

    @field_validator("SMTP_SENDER")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        sender_address(value)
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_values_in_prod(self) -> Self:
        if self.ENVIRONMENT != "prod":
            return self
        if not self.SMTP_USERNAME or not self.SMTP_PASSWORD.get_secret_value():
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD must be set when ENVIRONMENT=prod")
        if not self.SMTP_STARTTLS:
            raise ValueError("SMTP_STARTTLS must be true when ENVIRONMENT=prod (credentials)")
        if sender_address(self.SMTP_SENDER).domain.endswith("localhost"):
            raise ValueError("SMTP_SENDER must use a real domain when ENVIRONMENT=prod")
        if self.MAILER_FAULT_PAUSE:
            raise ValueError("MAILER_FAULT_PAUSE is for tests only")
        return self


def sender_address(value: str) -> Address:
    try:
        return single_address(value)
    except ValueError as e:
        raise ValueError(f"SMTP_SENDER: {e}") from None


# A bare address of the plainest form (a dot-atom of letters, digits, "_+-" at a dotted domain):
# what the header parser would make of it is known without running the parser, which costs more
# than anything else in composing an email.
_PLAIN_ADDRESS = re.compile(
    r"([A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)


def single_address(value: str) -> Address:
    """Exactly one mailbox, 'Display Name <local@domain.tld>' or a bare address; nothing that
    could smuggle a second header or recipient."""
    if plain := _PLAIN_ADDRESS.fullmatch(value):
        return Address(username=plain[1], domain=plain[2])
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{value!r} contains control characters")
    header = policy.default.header_factory("To", value)
    addresses = header.addresses
    # A non-ASCII local part is legal with SMTPUTF8 (RFC 6531); anything else is not.
    defects = [d for d in header.defects if not isinstance(d, errors.NonASCIILocalPartDefect)]
    if defects or len(addresses) != 1:
        raise ValueError(f"{value!r} is not exactly one valid address")
    address: Address = addresses[0]
    if not address.username or "." not in address.domain.strip("."):
        raise ValueError(f"{value!r} is not a valid address (local@domain.tld)")
    return address
