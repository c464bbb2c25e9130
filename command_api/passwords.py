"""Password hashing with bcrypt. The password is first reduced with SHA-256 (base64, 44 bytes) so
long passphrases are neither truncated nor refused by bcrypt's 72-byte limit (as passlib's
bcrypt_sha256 does).

bcrypt costs ~250 ms of one core at 12 rounds and releases the GIL while it runs. PasswordHasher
runs it on its own small pool of threads, never in the event loop nor in the threadpool the sync
task routes share: a login flood then waits in this pool's queue while task commands keep their
CPU and their threads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import bcrypt


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode())
    except ValueError:
        return False


def hash_cost(password_hash: str) -> int:
    """The cost (log2 rounds) a bcrypt hash was made with: `$2b$12$...` -> 12."""
    return int(password_hash.split("$")[2])


class PasswordHasher:
    """bcrypt at `rounds`, on at most `workers` threads at a time, `nice`d (0: not)."""

    def __init__(self, rounds: int, workers: int, nice: int = 0) -> None:
        self.rounds = rounds
        self.workers = workers
        # Checked when the email is unknown, so a login costs the same time either way: it must
        # have the configured cost, or timing tells which emails exist.
        self.dummy_hash = hash_password("not-a-real-password", rounds)
        self._pool = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="bcrypt",
            initializer=_lower_priority,
            initargs=(nice,),
        )

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, hash_password, password, self.rounds)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """False for a wrong password, and for no hash at all (unknown email) after spending
        the same time on the dummy hash."""
        loop = asyncio.get_running_loop()
        checked = password_hash if password_hash is not None else self.dummy_hash
        ok = await loop.run_in_executor(self._pool, verify_password, password, checked)
        return ok and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority(nice: int) -> None:
    """Renice the calling bcrypt thread, so the event loop, the group-commit writer and
    PostgreSQL get a core first when they need one. On Linux a thread is a task of its own and
    setpriority() on its id renices only it (POSIX would renice the whole process: elsewhere the
    threads keep the default priority)."""
    if nice and sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
