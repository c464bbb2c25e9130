from __future__ import annotations

import uvicorn

from command_api.main import create_app
from common.logging import configure_logging
from common.settings import CommandApiSettings, auth_settings, runtime_settings


def main() -> None:
    runtime = runtime_settings()
    configure_logging("command_api", runtime.LOG_LEVEL)
    auth_settings()  # refuse to start with unsafe auth settings outside dev
    settings = CommandApiSettings()
    uvicorn.run(
        create_app(),
        host=settings.COMMAND_API_HOST,
        port=settings.COMMAND_API_PORT,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
