"""The digest email written straight to bytes (mailer.mime) is what the `email` package writes for
the same message, byte for byte; and the plain-address shortcut of single_address gives what the
header parser gives."""

from __future__ import annotations

from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import default as default_policy

from aiosmtplib.email import flatten_message
from aiosmtplib.protocol import normalize_message_line_endings
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailer.mime import header_line, multipart_alternative
from mailer.settings import _PLAIN_ADDRESS, single_address

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def flattened_by_the_email_package(
    headers: dict[str, str], text: str, html: str, boundary: str
) -> bytes:
    """The same message built with the `email` package's classes, flattened by aiosmtplib."""
    message = MIMEMultipart("alternative", boundary=boundary)
    for name, value in headers.items():
        message[name] = value if value.isascii() else Header(value, "utf-8").encode()
    for body, subtype in ((text, "plain"), (html, "html")):
        part = MIMENonMultipart("text", subtype)
        part.set_payload(body, _UTF8_QP)
        message.attach(part)
    return normalize_message_line_endings(flatten_message(message, utf8=False, cte_type="8bit"))


def folded_by_the_email_package(name: str, value: str) -> str:
    message = Message()
    message[name] = value if value.isascii() else Header(value, "utf-8").encode()
    return flatten_message(message).decode().removesuffix("\n")


# Header values as the composer makes them: words, URLs, addresses, dates, a non-ASCII name.
header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x24FF, codec="utf-8"),
    max_size=160,
)
# Bodies: long lines, spaces and tabs at line ends, "=", "From " at line starts, non-ASCII.
body_texts = st.lists(
    st.sampled_from(["From ", "x" * 70, " ", "\t", "=", "é✓", "\n", "a", "<b>&amp;</b>", ".\n"]),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["Subject", "To", "List-Unsubscribe", "X-Digest-Id"]), value=header_values
)
@example(name="Subject", value="two  spaces")
@example(name="Subject", value=" leading and trailing ")
@example(name="Subject", value="x" * 69)
@example(name="Subject", value="x" * 70)
@example(
    name="List-Unsubscribe", value="<https://t.example/u?token=" + "y" * 90 + ">, <mailto:a@b.c>"
)
def test_a_header_line_is_folded_exactly_as_the_email_package_folds_it(
    name: str, value: str
) -> None:
    assert header_line(name, value) == folded_by_the_email_package(name, value)


@settings(max_examples=150, deadline=None)
@given(
    subject=header_values,
    sender=st.sampled_from(["TODO <no-reply@todo.localhost>", "=?utf-8?q?T=C3=A2ches?= <t@e.org>"]),
    text=body_texts,
    html=body_texts,
)
def test_the_message_is_written_byte_for_byte_as_the_email_package_writes_it(
    subject: str, sender: str, text: str, html: str
) -> None:
    headers = {
        "From": sender,
        "To": "ada@example.com",
        "Subject": subject,
        "Message-ID": "<digest-11111111-2222-3333-4444-555555555555@todo.localhost>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    boundary = "=_digest_11111111222233334444555555555555"

    written = multipart_alternative(headers, text or "t", html or "h", boundary)

    assert written == flattened_by_the_email_package(headers, text or "t", html or "h", boundary)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(_PLAIN_ADDRESS, fullmatch=True))
def test_a_plain_address_gives_what_the_header_parser_gives(value: str) -> None:
    parsed = default_policy.header_factory("To", value).addresses[0]

    shortcut = single_address(value)

    assert (str(shortcut), shortcut.addr_spec, shortcut.display_name) == (
        str(parsed),
        parsed.addr_spec,
        parsed.display_name,
    )
