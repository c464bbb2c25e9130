"""`python -m mailer` runs the digest mailer until SIGINT/SIGTERM."""

from __future__ import annotations

import sys
import threading

from common.health import Heartbeat, serve_health
from common.logging import configure_logging
from common.process import stop_on_signals
from common.settings import HealthSettings, database_settings, kafka_settings, runtime_settings
from mailer.main import build_mailer
from mailer.settings import MailerSettings


def main() -> int:
    configure_logging("mailer", runtime_settings().LOG_LEVEL)
    stop = threading.Event()

    stop_on_signals(stop.set)
    mailer = build_mailer(MailerSettings(), database_settings(), kafka_settings(), stop)
    health = HealthSettings()
    mailer.heartbeat = Heartbeat(health.HEALTH_STALE_SECONDS)
    serve_health(health.HEALTH_HOST, health.MAILER_HEALTH_PORT, mailer.heartbeat.fresh, "mailer")
    mailer.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
