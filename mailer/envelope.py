"""One email as an SMTP transaction of our own (MAIL, RCPT, DATA with aiosmtplib's commands), as
aiosmtplib's send_message would send it, split so that the envelope can be opened ahead of DATA
(mailer.smtp)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from email.message import Message

import aiosmtplib
from aiosmtplib import SMTPNotSupported, SMTPResponseException
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message
from aiosmtplib.protocol import normalize_message_line_endings


@dataclass(frozen=True)
class Transaction:
    """One email as SMTP carries it: the envelope and the message flattened to bytes."""

    sender: str
    recipients: list[str]
    options: list[str]
    encoding: str
    data: bytes


def transaction_for(client: aiosmtplib.SMTP, message: Message) -> Transaction:
    """What aiosmtplib's send_message would send for `message` on `client`'s server: SMTPUTF8
    for a non-ASCII address, 8BITMIME when offered, the SIZE declared when supported."""
    sender, recipients = extract_sender(message), extract_recipients(message)
    if sender is None or not recipients:
        raise ValueError("the message has no From or no recipient")
    utf8 = not (sender + "".join(recipients)).isascii()
    options = []
    if utf8:
        if not client.supports_extension("smtputf8"):
            raise SMTPNotSupported("a non-ASCII address, and the server does not offer SMTPUTF8")
        options.append("SMTPUTF8")
    eight_bit = client.supports_extension("8bitmime")
    if eight_bit:
        options.append("BODY=8BITMIME")
    flat = flatten_message(message, utf8=utf8, cte_type="8bit" if eight_bit else "7bit")
    data = normalize_message_line_endings(flat)  # as DATA transmits it (RFC 1870 counts that)
    if client.supports_extension("size"):
        options.insert(0, f"SIZE={len(data)}")
    return Transaction(sender, recipients, options, "utf-8" if utf8 else "ascii", data)


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
