"""`python -m query_api`: serve on QUERY_API_HOST:QUERY_API_PORT (default 127.0.0.1:8002)."""

from __future__ import annotations

import uvicorn

from query_api.bootstrap import create_app
from query_api.settings import QueryApiSettings
from runtime.logging import configure_logging
from runtime.settings import auth_settings, runtime_settings


def main() -> None:
    runtime = runtime_settings()
    configure_logging("query_api", runtime.LOG_LEVEL)
    settings = QueryApiSettings()
    # auth_settings() refuses to start with unsafe auth settings outside dev.
    uvicorn.run(
        create_app(settings=settings, auth=auth_settings()),
        host=settings.QUERY_API_HOST,
        port=settings.QUERY_API_PORT,
        log_config=None,
        access_log=False,
        # Open /stream connections never end by themselves: on shutdown, give ordinary requests
        # this long to finish, then close the streams (clients reconnect with Last-Event-ID).
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
