"""Sending over SMTP (aiosmtplib) on one reused connection, with failures classified.

The SMTP transaction is our own sequence of aiosmtplib's commands (MAIL, RCPT, DATA) rather than
`send_message`, so that the next email's envelope can be opened ahead (`prepare`: MAIL FROM and
RCPT TO) while the caller records the previous one in PostgreSQL.
Only DATA delivers an email, and it is sent by `send`, after the caller has recorded the previous
email: the crash window (accepted by the server, not yet recorded) stays one email wide.

- Sent: the server accepted the message (250 after DATA).
- Permanent: the server refused *this message* for good (5xx on RCPT or DATA, an address it cannot
  take): retrying would not help, the message goes to the dead-letter topic.
- Transient: anything else (connection refused/reset, timeouts, 4xx, and also authentication or
  sender refusals, which are configuration problems rather than this message's fault): retried with
  exponential backoff and never given up on, so no email is lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

from mailer.envelope import Email, Transaction, open_envelope, reset_on_refusal, transaction_for
from mailer.settings import MailerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    pass


@dataclass(frozen=True)
class Permanent:
    reason: str
    code: int | None = None


@dataclass(frozen=True)
class Transient:
    reason: str
    code: int | None = None


SendOutcome = Sent | Permanent | Transient


def _by_code(code: int, reason: str) -> Permanent | Transient:
    return Permanent(reason, code) if 500 <= code < 600 else Transient(reason, code)


def classify(exc: BaseException) -> Permanent | Transient:
    """What a failed send means for the message (see module docstring)."""
    if isinstance(exc, SMTPRecipientsRefused):
        refusals = exc.recipients
        reason = "; ".join(f"recipient refused: {r.code} {r.message}" for r in refusals)
        codes = [r.code for r in refusals] or [0]
        return _by_code(min(codes), reason)
    if isinstance(exc, SMTPRecipientRefused):
        return _by_code(exc.code, f"recipient refused: {exc.code} {exc.message}")
    if isinstance(exc, SMTPAuthenticationError):
        return Transient(f"authentication failed: {exc.code} (check SMTP credentials)", exc.code)
    if isinstance(exc, SMTPSenderRefused):
        return Transient(f"sender refused: {exc.code} {exc.message} (check SMTP_SENDER)", exc.code)
    if isinstance(exc, SMTPConnectError | SMTPHeloError | SMTPServerDisconnected):
        return Transient(f"connection: {exc}")
    if isinstance(exc, SMTPResponseException):  # incl. SMTPDataError
        return _by_code(exc.code, f"refused: {exc.code} {exc.message}")
    if isinstance(exc, SMTPNotSupported):
        return Permanent(f"not supported by the server: {exc}")
    if isinstance(exc, ValueError):  # aiosmtplib refuses an address it cannot send safely
        return Permanent(f"invalid message: {exc}")
    return Transient(f"{type(exc).__name__}: {exc}")


_SEND_ERRORS = (SMTPException, OSError, TimeoutError, ValueError)


@dataclass(frozen=True)
class _Opened:
    """An envelope opened ahead on `client` (MAIL and RCPT answered): only DATA is left."""

    email: Email
    client: aiosmtplib.SMTP
    transaction: Transaction


class SmtpSender:
    """One SMTP connection, opened lazily, reused across messages, re-opened after a failure."""

    def __init__(self, settings: MailerSettings, should_stop: Callable[[], bool]) -> None:
        self._settings = settings
        self._should_stop = should_stop
        self._client: aiosmtplib.SMTP | None = None
        self._delay = settings.MAILER_RETRY_INITIAL_SECONDS
        # the next message's envelope, being opened while the caller records the previous one
        self._ahead: asyncio.Task[_Opened | None] | None = None
        # prepared while a send is under way: opened once it is over (never two MAILs at once)
        self._in_send = False
        self._waiting: Email | None = None
        self.connections_opened = 0

    def prepare(self, email: Email) -> None:
        """`email` is the next to be sent: open its envelope (MAIL FROM, RCPT TO) now, in the
        background; only `send(email)` sends its DATA. A prepared email that is not sent next
        is reset (RSET) at the next send. Whatever goes wrong here is left for `send` to meet
        again and report: preparing only saves round trips."""
        if self._ahead is not None or self._waiting is not None:
            return
        if self._in_send:
            self._waiting = email
        else:
            self._ahead = asyncio.ensure_future(self._open_ahead(email))

    async def send(self, email: Email) -> SendOutcome:
        """Try up to MAILER_SEND_ATTEMPTS times, backing off after each transient failure. A
        Transient result means "not sent yet": the caller must keep the message for later."""
        outcome: SendOutcome = Transient("not attempted")
        for attempt in range(1, self._settings.MAILER_SEND_ATTEMPTS + 1):
            if self._should_stop():
                break
            outcome = await self.send_once(email)
            if not isinstance(outcome, Transient):
                self._delay = self._settings.MAILER_RETRY_INITIAL_SECONDS
                return outcome
            log.warning(
                "transient SMTP failure; backing off",
                extra={"reason": outcome.reason, "attempt": attempt, "delay": self._delay},
            )
            await self._backoff()
        return outcome

    async def send_once(self, email: Email) -> SendOutcome:
        self._in_send = True
        try:
            return await self._send_once(email)
        finally:
            self._in_send = False
            waiting, self._waiting = self._waiting, None
            if waiting is not None:
                self.prepare(waiting)

    async def _send_once(self, email: Email) -> SendOutcome:
        outcome: SendOutcome = Transient("not attempted")
        opened = await self._take_ahead(email)
        for retry in (False, True):
            reused = self._client is not None and self._client.is_connected
            try:
                if opened is not None:
                    client, transaction = opened.client, opened.transaction
                    opened = None
                else:
                    client = await self._connection()
                    transaction = transaction_for(client, email)
                    await open_envelope(client, transaction)
                await reset_on_refusal(client, client.data(transaction.data))
                return Sent()
            except _SEND_ERRORS as e:
                outcome = classify(e)
                if isinstance(outcome, Transient):
                    await self._drop()
                if not (isinstance(e, SMTPServerDisconnected) and reused and not retry):
                    return outcome
                # The server had closed our idle connection: reconnect at once, no backoff.
        return outcome

    async def close(self) -> None:
        ahead, self._ahead, self._waiting = self._ahead, None, None
        if ahead is not None:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except _SEND_ERRORS:
                client.close()

    async def _open_ahead(self, email: Email) -> _Opened | None:
        try:
            client = await self._connection()
            transaction = transaction_for(client, email)
            await open_envelope(client, transaction)
        except _SEND_ERRORS as e:
            log.debug("opening the next envelope ahead failed", extra={"reason": str(e)})
            if isinstance(classify(e), Transient):
                await self._drop()
            return None
        return _Opened(email, client, transaction)

    async def _take_ahead(self, email: Email) -> _Opened | None:
        """The envelope opened ahead for `email`, if it is still usable; one opened for
        another email is reset."""
        ahead, self._ahead = self._ahead, None
        opened = await ahead if ahead is not None else None
        if opened is None or (opened.email is email and opened.client is self._client):
            return opened
        if opened.client is self._client:
            try:
                await opened.client.rset()
            except _SEND_ERRORS:
                await self._drop()
        return None

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.SMTP_HOST,
            port=s.SMTP_PORT,
            username=s.SMTP_USERNAME or None,
            password=s.SMTP_PASSWORD.get_secret_value() or None,
            start_tls=s.SMTP_STARTTLS,
            timeout=s.SMTP_TIMEOUT_SECONDS,
        )
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()  # the extensions decide each transaction's options
        self._client = client
        self.connections_opened += 1
        log.info("SMTP connected", extra={"host": s.SMTP_HOST, "port": s.SMTP_PORT})
        return client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _backoff(self) -> None:
        delay = self._delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
        self._delay = min(self._delay * 2, self._settings.MAILER_RETRY_MAX_SECONDS)
        await sleep_unless(delay, self._should_stop)


async def sleep_unless(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep, waking early (within 0.1 s) once should_stop() holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not should_stop():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, 0.1))
