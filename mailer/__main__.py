"""`python -m mailer` runs the digest mailer until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from common.health import Heartbeat, serve_health
from common.logging import configure_logging
from common.settings import HealthSettings, database_settings, kafka_settings, runtime_settings
from mailer.service import build_mailer
from mailer.settings import MailerSettings


def main() -> int:
    configure_logging("mailer", runtime_settings().LOG_LEVEL)
    stop = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    mailer = build_mailer(MailerSettings(), database_settings(), kafka_settings(), stop)
    health = HealthSettings()
    mailer.heartbeat = Heartbeat(health.HEALTH_STALE_SECONDS)
    serve_health(health.HEALTH_HOST, health.MAILER_HEALTH_PORT, mailer.heartbeat.fresh, "mailer")
    mailer.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
