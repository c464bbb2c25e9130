"""The mailer's overlap of one email's waits with the next one's work: the next digest composed
while this one waits on SMTP, the next envelope opened and the next user's subscription checked
while this one is recorded, and never the next DATA before this one is recorded (the crash window
stays one email wide)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from contracts.events import DailyDigestRequested
from mailer.compose import DigestComposer
from mailer.envelope import Email
from mailer.settings import MailerSettings
from mailer.smtp import SendOutcome
from tests.support.mailer_fakes import FakeProcessed, FakeSender, Log, digest, mailer, process


class WaitingSender(FakeSender):
    """Waits on its 'server' like a real connection does, noting what was composed meanwhile."""

    def __init__(self, composer: CountingComposer) -> None:
        super().__init__()
        self.composer = composer
        self.composed_while_sending: list[list[str]] = []

    async def send(self, email: Email) -> SendOutcome:
        await asyncio.sleep(0)  # the SMTP round trip
        self.composed_while_sending.append(list(self.composer.composed))
        return await super().send(email)


class CountingComposer(DigestComposer):
    def __init__(self, settings: MailerSettings) -> None:
        super().__init__(settings)
        self.composed: list[str] = []

    def compose(self, event: DailyDigestRequested) -> Email:
        self.composed.append(event.email)
        return super().compose(event)


def test_the_next_digest_is_composed_while_the_current_one_waits_on_smtp_and_once_only() -> None:
    log = Log()
    ada, bob, cyd = (digest(f"{n}@example.com") for n in ("ada", "bob", "cyd"))
    composer = CountingComposer(MailerSettings())
    sender = WaitingSender(composer)
    processed = FakeProcessed(already=[bob.event_id])
    instance, _, _, _ = mailer(sender, processed, composer=composer)

    result = process(instance, [log.message(ada), log.message(bob), log.message(cyd)])

    assert sender.sent_to == ["ada@example.com", "cyd@example.com"]
    assert result.sent == 2 and result.duplicates == 1
    # bob's digest was already processed: never composed; cyd's was ready before its turn
    assert sender.composed_while_sending[0] == ["ada@example.com", "cyd@example.com"]
    assert composer.composed == ["ada@example.com", "cyd@example.com"]


class JournalSender(FakeSender):
    """Waits on its 'server' like a real connection does; notes each step in a shared journal."""

    def __init__(self, journal: list[tuple[str, str]]) -> None:
        super().__init__()
        self.journal = journal

    def prepare(self, email: Email) -> None:
        self.journal.append(("prepare", email.recipients[0]))

    async def send(self, email: Email) -> SendOutcome:
        await asyncio.sleep(0)  # the SMTP round trips
        self.journal.append(("send", email.recipients[0]))
        return await super().send(email)


class JournalProcessed(FakeProcessed):
    def __init__(self, journal: list[tuple[str, str]], emails: dict[UUID, str]) -> None:
        super().__init__()
        self.journal, self.emails = journal, emails

    async def record(self, event_id: UUID) -> None:
        self.journal.append(("record", self.emails[event_id]))
        await super().record(event_id)


class JournalSubscriptions:
    """Everyone subscribed; notes whose subscription was checked, and when."""

    def __init__(self, journal: list[tuple[str, str]], emails: dict[UUID, str]) -> None:
        self.journal, self.emails = journal, emails

    async def digest_enabled(self, user_id: UUID) -> bool:
        await asyncio.sleep(0)  # the PostgreSQL round trip
        self.journal.append(("check", self.emails[user_id]))
        return True

    async def close(self) -> None:
        pass


def test_the_next_envelope_opens_once_this_is_sent_and_its_check_once_this_is_recorded() -> None:
    log = Log()
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    journal: list[tuple[str, str]] = []
    processed = JournalProcessed(journal, {d.event_id: d.email for d in (ada, bob)})
    subscriptions = JournalSubscriptions(journal, {d.user_id: d.email for d in (ada, bob)})
    instance, _, _, _ = mailer(JournalSender(journal), processed, subscriptions=subscriptions)

    result = process(instance, [log.message(ada), log.message(bob)])

    assert result.sent == 2
    # bob's DATA (his "send") only once ada is recorded: one email sent and not recorded at most;
    # his subscription checked as late as it can be without a round trip of its own
    assert journal == [
        ("check", "ada@example.com"),
        ("send", "ada@example.com"),
        ("prepare", "bob@example.com"),
        ("record", "ada@example.com"),
        ("check", "bob@example.com"),
        ("send", "bob@example.com"),
        ("record", "bob@example.com"),
    ]
