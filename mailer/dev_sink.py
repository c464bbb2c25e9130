"""Development SMTP sink without Node: accepts every email and writes it as an .eml file.

    python -m mailer.dev_sink [--host 127.0.0.1] [--port 1025] [--dir .data/mail]

Used by infra/smtp-sink.sh when npm is not available (maildev is preferred: it has a web inbox).
Never for production: it accepts anything from anyone on its address.
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from runtime.process import stop_on_signals


class EmlFolder:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._counter = itertools.count(1)
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._counter):06d}.eml"
        tmp = self._folder / f".{name}.tmp"
        tmp.write_bytes(bytes(envelope.content))
        tmp.rename(self._folder / name)  # atomic: readers never see half a message
        print(
            f"smtp-sink: {envelope.mail_from} -> {', '.join(envelope.rcpt_tos)}: {name}", flush=True
        )
        return "250 2.0.0 Message accepted"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mailer.dev_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"))
    args = parser.parse_args()
    controller = Controller(
        EmlFolder(args.dir), hostname=args.host, port=args.port, enable_SMTPUTF8=True
    )
    stop = threading.Event()

    stop_on_signals(stop.set)
    controller.start()
    print(
        f"smtp-sink: SMTP on {args.host}:{args.port}, emails saved in {args.dir.resolve()}/",
        flush=True,
    )
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
