"""The digest email: Jinja2 templates (HTML autoescaped + plain text) and stable headers.

The message is a pure function of the event: the same event always gives the same bytes, with the
same Message-ID (`<digest-{event_id}@{sender domain}>`), Date (the event's time) and MIME boundary.
If the one remaining crash window re-sends it (see docs/digest.md), the copy is the very same
message, which receiving systems and mail clients can recognise as a duplicate.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from uuid import UUID

from aiosmtplib.email import flatten_message
from aiosmtplib.protocol import normalize_message_line_endings
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from contracts.events import DailyDigestRequested
from contracts.unsubscribe import issue_unsubscribe_token, unsubscribe_mailto, unsubscribe_url
from mailer.envelope import Email
from mailer.mime import multipart_alternative
from mailer.settings import MailerSettings, sender_address, single_address
from runtime.settings import AuthSettings, auth_settings


class InvalidRecipientError(ValueError):
    """The event's address cannot be used as a recipient (a permanent failure)."""


def message_id_for(event_id: UUID, domain: str) -> str:
    return f"<digest-{event_id}@{domain}>"


def _oneline(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()


def template_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("mailer", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["oneline"] = _oneline
    return env


class DigestComposer:
    """Builds the digest email.

    The common case (ASCII addresses) is written straight to bytes (mailer.mime): the same bytes
    the `email` package would flatten, for less than half the CPU. An internationalised
    (non-ASCII) address takes the `EmailMessage` path, sent with SMTPUTF8.
    """

    def __init__(self, settings: MailerSettings, auth: AuthSettings | None = None) -> None:
        self._auth = auth or auth_settings()
        self._public_base_url = settings.PUBLIC_BASE_URL
        self._sender: Address = sender_address(settings.SMTP_SENDER)
        self._from = formataddr((self._sender.display_name, self._sender.addr_spec), "utf-8")
        self._app_url = settings.MAILER_APP_URL
        env = template_environment()
        self._text = env.get_template("digest.txt")
        self._html = env.get_template("digest.html")

    @property
    def sender(self) -> Address:
        return self._sender

    def compose(self, event: DailyDigestRequested) -> Email:
        try:
            recipient = single_address(event.email)
        except ValueError as e:
            raise InvalidRecipientError(str(e)) from None
        token = issue_unsubscribe_token(event.user_id, event.occurred_at, self._auth)
        unsubscribe = unsubscribe_url(self._public_base_url, token)
        context = {
            "unsubscribe_url": unsubscribe,
            "digest_date": event.digest_date.isoformat(),
            "stats": event.stats,
            "undone_titles": event.undone_titles,
            "more": max(0, event.stats.undone - len(event.undone_titles)),
            "app_url": self._app_url,
        }
        text, html = self._text.render(context), self._html.render(context)
        boundary = f"=_digest_{event.event_id.hex}"  # not random: the same bytes every time
        headers = {
            "From": self._from,
            "To": str(recipient),
            "Subject": subject_for(event),
            "Date": format_datetime(event.occurred_at),
            "Message-ID": message_id_for(event.event_id, self._sender.domain),
            "Auto-Submitted": "auto-generated",  # RFC 3834: no auto-replies, please
            "X-Auto-Response-Suppress": "All",
            "X-Digest-Id": str(event.digest_id),
            # RFC 2369 + RFC 8058: mail clients offer "unsubscribe" and POST to the URL.
            "List-Unsubscribe": (
                f"<{unsubscribe}>, <{unsubscribe_mailto(self._sender.addr_spec, token)}>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        envelope = (self._sender.addr_spec, (recipient.addr_spec,))
        if not str(recipient).isascii() or not self._sender.addr_spec.isascii():
            return _international(envelope, headers, text, html, boundary)
        return Email(*envelope, multipart_alternative(headers, text, html, boundary))


def _international(
    envelope: tuple[str, tuple[str, ...]],
    headers: dict[str, str],
    text: str,
    html: str,
    boundary: str,
) -> Email:
    """A non-ASCII address: an `EmailMessage` flattened as aiosmtplib sends it (SMTPUTF8 when an
    envelope address is non-ASCII; a server offering SMTPUTF8 offers 8BITMIME, RFC 6531)."""
    message = EmailMessage()
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    message.set_boundary(boundary)
    utf8 = not (envelope[0] + "".join(envelope[1])).isascii()
    data = normalize_message_line_endings(flatten_message(message, utf8=utf8, cte_type="8bit"))
    return Email(*envelope, data, utf8=utf8)


def subject_for(event: DailyDigestRequested) -> str:
    stats = event.stats
    return f"Your TODO digest for {event.digest_date:%a %d %b %Y}: {stats.undone} to do"
