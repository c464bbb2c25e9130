"""`python -m mailer` runs the digest mailer until SIGINT/SIGTERM.

python -m mailer                                 # consume digests and email them
python -m mailer dlq list|replay|fix|discard     # parked digests (docs/runbooks/dead-letters.md)
"""

from __future__ import annotations

import argparse
import sys
import threading

from consuming.dlq_cli import add_dlq_commands, run_dlq
from mailer.bootstrap import bootstrap
from mailer.settings import MailerSettings
from runtime.logging import configure_logging
from runtime.process import stop_on_signals
from runtime.settings import HealthSettings, database_settings, kafka_settings, runtime_settings


def consume() -> int:
    stop = threading.Event()
    stop_on_signals(stop.set)
    settings = MailerSettings()
    process = bootstrap(settings, database_settings(), kafka_settings(), HealthSettings(), stop)
    process.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailer", description="Digest emails.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("consume", help="email the digests from Kafka, forever (the default)")
    add_dlq_commands(sub)
    args = parser.parse_args(argv)
    configure_logging("mailer", runtime_settings().LOG_LEVEL)
    if args.command == "dlq":
        from mailer.replay import MailerReplayer  # not needed by the service itself

        settings, db = MailerSettings(), database_settings()
        return run_dlq(
            args,
            db.conninfo,
            settings.MAILER_GROUP_ID,
            lambda: MailerReplayer(settings, db),
        )
    return consume()


if __name__ == "__main__":
    sys.exit(main())
