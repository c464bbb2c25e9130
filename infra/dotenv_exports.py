"""`.env` for the shell scripts, read by the same parser the services' settings use
(python-dotenv, through pydantic-settings' `env_file=".env"`), so `make run`, its nginx and its
SMTP sink see exactly the values the Python processes see. Prints `export KEY='value'` lines for
keys the environment does not already set (the environment always wins, as in pydantic-settings).

    eval "$(python infra/dotenv_exports.py [.env])"
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from dotenv import dotenv_values


def exports(path: Path, environ: dict[str, str]) -> list[str]:
    if not path.is_file():
        return []
    values = dotenv_values(path)  # the call pydantic-settings makes (${VAR} interpolated too)
    return [
        f"export {key}={shlex.quote(value)}"
        for key, value in values.items()
        if value is not None and key not in environ and key.isidentifier()
    ]


if __name__ == "__main__":
    env_file = Path(sys.argv[1] if len(sys.argv) > 1 else ".env")
    print("\n".join(exports(env_file, dict(os.environ))))
