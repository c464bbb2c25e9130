"""`python -m mailer dlq replay`: a parked digest sent through the live mailer's own path
(Mailer.replay: decode, skip if already in processed_events, compose, send, record). The email is
recorded in processed_events right after the send, as live; the parked row goes in the replay's
transaction, so a crash in between makes the next replay see it processed and just unpark it."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from contracts.dead_letters import DeadLetter
from mailer.bootstrap import build_mailer_handler
from mailer.settings import MailerSettings
from runtime.settings import DatabaseSettings


class MailerReplayer:
    def __init__(self, settings: MailerSettings, db: DatabaseSettings):
        self._runner = asyncio.Runner()
        self._mailer = build_mailer_handler(settings, db)
        self.sent = 0

    def replay(self, cur: psycopg.Cursor[Any], letter: DeadLetter) -> None:
        if self._runner.run(self._mailer.replay(letter.value)):
            self.sent += 1

    def close(self) -> None:
        self._runner.run(self._mailer.aclose())
        self._runner.close()
