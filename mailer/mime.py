"""The digest email written straight to the bytes SMTP's DATA carries, without building `email`
message objects and flattening them (composing went from ~1 ms of CPU per email to less than
half: it was the mailer's largest cost besides talking to the servers).

What is written is what the `email` package writes for a `multipart/alternative` message of two
quoted-printable UTF-8 text parts (compat32 policy, as aiosmtplib flattens a classic message),
byte for byte: tests/unit/test_mailer_mime.py compares the two. The only `email` code still run
per email is its own header folding, and only for a header too long for one line or not plain
ASCII (the List-Unsubscribe header, a non-ASCII sender name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.charset import QP, Charset
from email.header import Header
from email.policy import compat32

from aiosmtplib.protocol import normalize_message_line_endings

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # readable source, 7-bit safe

# Printable ASCII words separated by single spaces: what compat32 writes unchanged when the line
# fits (longer, or with other whitespace, it is folded by the `email` package itself).
_UNFOLDED = re.compile(r"[!-~]+(?: [!-~]+)*")
_MAX_LINE = 78  # RFC 5322's recommended limit, compat32's max_line_length

# The generator's `mangle_from_` (compat32): a body line starting "From " gets a ">".
_FROM_LINE = re.compile(r"^From ", re.MULTILINE)

_PART_HEADERS = (
    'MIME-Version: 1.0\nContent-Type: text/{subtype}; charset="utf-8"\n'
    "Content-Transfer-Encoding: quoted-printable\n\n"
)
_PLAIN_PART = _PART_HEADERS.format(subtype="plain")
_HTML_PART = _PART_HEADERS.format(subtype="html")


def header_line(name: str, value: str) -> str:
    """`Name: value` and its line end as the generator writes it (folded when too long; a non-ASCII
    value encoded as RFC 2047 UTF-8 words first)."""
    if not value.isascii():
        value = Header(value, "utf-8").encode()
    line = f"{name}: {value}"
    if len(line) <= _MAX_LINE and _UNFOLDED.fullmatch(value):
        return line + "\n"
    return compat32.fold(name, value)


def multipart_alternative(headers: Mapping[str, str], text: str, html: str, boundary: str) -> bytes:
    """The message with `headers` (in order, after Content-Type and MIME-Version) and the two
    bodies, with CRLF line ends (as DATA transmits it and SIZE counts it)."""
    head = [
        header_line("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        "MIME-Version: 1.0\n",
        *(header_line(name, value) for name, value in headers.items()),
    ]
    delimiter = f"--{boundary}"
    flat = "".join(
        [
            *head,
            "\n",
            f"{delimiter}\n",
            _PLAIN_PART,
            _quoted_printable(text),
            f"\n{delimiter}\n",
            _HTML_PART,
            _quoted_printable(html),
            f"\n{delimiter}--\n",
        ]
    )
    return normalize_message_line_endings(flat.encode("ascii"))


def _quoted_printable(body: str) -> str:
    return _FROM_LINE.sub(">From ", _UTF8_QP.body_encode(body))
