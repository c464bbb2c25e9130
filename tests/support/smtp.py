"""A real SMTP server for tests (aiosmtpd, in a background thread, on a free port).

It records every accepted message, and can be told to
- fail transiently: the next N deliveries get `451` at DATA (or the connection dropped), then it
  recovers;
- refuse recipients permanently: `550` at RCPT for given addresses;
- drop its open connections, as a server does with idle clients.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller

FailureMode = Literal["451", "disconnect"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, subtype: Literal["plain", "html"]) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_subtype() == subtype
        return str(body.get_content()).replace("\r\n", "\n")


class SmtpServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._received: list[Received] = []
        self._rejected: dict[str, int] = {}
        self._fail_remaining = 0
        self._fail_mode: FailureMode = "451"
        self.transient_failures_served = 0
        self._sessions: list[Any] = []
        self.loop: Any = None  # the server's event loop, set once started
        self.rejections_served = 0
        self.recipients_accepted = 0  # RCPT answered 250: envelopes opened, delivered or not
        self.connections = 0

    # --- test controls -----------------------------------------------------------------------

    def fail_transiently(self, times: int, mode: FailureMode = "451") -> None:
        with self._lock:
            self._fail_remaining = times
            self._fail_mode = mode

    def reject_recipient(self, address: str, code: int = 550) -> None:
        with self._lock:
            self._rejected[address.lower()] = code

    def accept_recipient(self, address: str) -> None:
        """Undo reject_recipient: the mailbox exists again."""
        with self._lock:
            self._rejected.pop(address.lower(), None)

    def drop_connections(self) -> None:
        """Close every open client connection from the server side (like an idle timeout)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        done = threading.Event()

        def close() -> None:
            for server in sessions:
                if server.transport is not None:
                    server.transport.close()
            done.set()

        self.loop.call_soon_threadsafe(close)
        done.wait(5)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until at least `count` messages arrived (or the timeout); returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self._received)

    def settle(self, quiet: float = 1.0, timeout: float = 30.0) -> list[Received]:
        """Wait until nothing new arrived for `quiet` seconds: 'no more emails are coming'."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            count = len(self.received)
            if count == last:
                return self.received
            last = count
            time.sleep(quiet)
        return self.received

    # --- aiosmtpd handler hooks (names are aiosmtpd's) ---------------------------------------

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self._lock:
            self.connections += 1
            self._sessions.append(server)
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            code = self._rejected.get(address.lower())
            if code is not None:
                self.rejections_served += 1
                return f"{code} 5.1.1 <{address}>: mailbox unavailable"
            self.recipients_accepted += 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                self.transient_failures_served += 1
                if self._fail_mode == "disconnect":
                    server.transport.close()
                    return "421 4.3.0 closing connection"
                return "451 4.3.0 temporary failure, try again later"
            self._received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content))
            )
            self._cond.notify_all()
        return "250 2.0.0 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(
        server, hostname=server.host, port=server.port, enable_SMTPUTF8=True, ready_timeout=10
    )
    controller.start()
    server.loop = controller.loop
    try:
        yield server
    finally:
        controller.stop()
