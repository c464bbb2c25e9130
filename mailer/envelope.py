"""One email as an SMTP transaction of our own (MAIL, RCPT, DATA with aiosmtplib's commands), as
aiosmtplib's send_message would send it, split so that the envelope can be opened ahead of DATA
(mailer.smtp). The email comes already flattened to bytes (mailer.compose)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import SMTPNotSupported, SMTPResponseException


@dataclass(frozen=True)
class Email:
    """One email as the composer hands it over: its envelope addresses and the message as DATA
    carries it (CRLF line ends). `utf8`: an address is non-ASCII, so it needs SMTPUTF8."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    utf8: bool = False


@dataclass(frozen=True)
class Transaction:
    """One email as SMTP carries it on a given server: the envelope, its options, the bytes."""

    sender: str
    recipients: tuple[str, ...]
    options: list[str]
    encoding: str
    data: bytes


def transaction_for(client: aiosmtplib.SMTP, email: Email) -> Transaction:
    """What aiosmtplib's send_message would send for `email` on `client`'s server: SMTPUTF8 for a
    non-ASCII address, 8BITMIME when offered, the SIZE declared when supported."""
    options = []
    if email.utf8:
        if not client.supports_extension("smtputf8"):
            raise SMTPNotSupported("a non-ASCII address, and the server does not offer SMTPUTF8")
        options.append("SMTPUTF8")
    if client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    if client.supports_extension("size"):
        options.insert(0, f"SIZE={len(email.data)}")
    encoding = "utf-8" if email.utf8 else "ascii"
    return Transaction(email.sender, email.recipients, options, encoding, email.data)


async def open_envelope(client: aiosmtplib.SMTP, transaction: Transaction) -> None:
    """MAIL FROM and RCPT TO (every recipient must be accepted: a digest has one)."""
    t = transaction
    await reset_on_refusal(client, client.mail(t.sender, options=t.options, encoding=t.encoding))
    for recipient in t.recipients:
        await reset_on_refusal(client, client.rcpt(recipient, encoding=t.encoding))


async def reset_on_refusal(client: aiosmtplib.SMTP, command: Awaitable[object]) -> None:
    """Await the command; after a refusal, reset the envelope (as aiosmtplib's sendmail does) so
    the connection serves the next message, then re-raise."""
    try:
        await command
    except SMTPResponseException:
        with contextlib.suppress(SMTPResponseException, ConnectionError):
            await client.rset()
        raise
