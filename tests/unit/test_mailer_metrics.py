"""The mailer's email counters, through the same process_batch the live loop runs (fakes for SMTP
and the database, as in tests.support.mailer_fakes)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from mailer.smtp import Permanent, SendOutcome, Transient
from tests.support.mailer_fakes import FakeSender, Log, digest, email_counts, mailer, process


def test_emails_sent_refused_and_retried_are_counted_once_each() -> None:
    log = Log()
    ada, bob, carol = (digest(f"{n}@example.com") for n in ("ada", "bob", "carol"))
    outcomes: dict[str, SendOutcome] = {
        "bob@example.com": Permanent("recipient refused: 550 mailbox unavailable", 550),
        "carol@example.com": Transient("connection refused"),
    }
    instance, _, _, _ = mailer(FakeSender(outcomes))  # registers the mailer's families
    before = email_counts("sent", "retried", "failed")

    process(instance, [log.message(ada, 0), log.message(bob, 1), log.message(carol, 2)])

    after = email_counts("sent", "retried", "failed")
    assert {k: after[k] - before[k] for k in after} == {"sent": 1, "failed": 1, "retried": 1}
    poison = REGISTRY.get_sample_value(
        "dead_letters_total", {"service": "mailer", "kind": "poison", "reason": "PoisonError"}
    )
    assert poison is not None and poison >= 1
