"""`python -m command_api [--host H] [--port P]` serves the command API (settings: environment)."""

from __future__ import annotations

import argparse

import uvicorn

from command_api.bootstrap import bootstrap
from command_api.settings import CommandApiSettings
from runtime.logging import configure_logging
from runtime.settings import auth_settings, runtime_settings


def main() -> None:
    settings = CommandApiSettings()
    parser = argparse.ArgumentParser(prog="python -m command_api", description=__doc__)
    parser.add_argument("--host", default=settings.COMMAND_API_HOST, help="COMMAND_API_HOST")
    parser.add_argument(
        "--port", type=int, default=settings.COMMAND_API_PORT, help="COMMAND_API_PORT"
    )
    args = parser.parse_args()
    configure_logging("command_api", runtime_settings().LOG_LEVEL)
    auth_settings()  # refuse to start with unsafe auth settings outside dev
    uvicorn.run(
        bootstrap(settings=settings),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
