"""Password hashing with bcrypt. The password is first reduced with SHA-256 (base64, 44 bytes) so
long passphrases are neither truncated nor refused by bcrypt's 72-byte limit (as passlib's
bcrypt_sha256 does)."""

from __future__ import annotations

import base64
import hashlib

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


# Checked when the email is unknown, so a login answers in the same time either way.
_DUMMY_HASH = hash_password("not-a-real-password", 12)


def burn_time_like_a_check(password: str) -> None:
    verify_password(password, _DUMMY_HASH)
