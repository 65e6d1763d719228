"""bcrypt password hashes, made where a request enters the member, never in apply.

The API layer hashes a UserAdd / UserChangePassword password with ``hash_password`` before it
proposes the request, so the log, the WAL and snapshots carry only the hash (TOB-ETCD-012), and
drops the plaintext. The salt comes from the random generator the caller passes in (the server
passes a ``random.SystemRandom``); hashes use the "$2a$" prefix, as etcd's Go bcrypt writes them.

bcrypt reads at most 72 bytes of a password. etcd 3.5 (Go bcrypt of its day) silently ignored the
rest, so a longer password set on etcd must still log in here: both functions use the first 72 bytes.
"""

from __future__ import annotations

import base64
import random

import bcrypt

MIN_COST = 4
MAX_COST = 31
MAX_PASSWORD_BYTES = 72

_STD_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT_B64 = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TO_BCRYPT_B64 = bytes.maketrans(_STD_B64, _BCRYPT_B64)


def _password_bytes(password: str | bytes) -> bytes:
    raw = password.encode() if isinstance(password, str) else bytes(password)
    return raw[:MAX_PASSWORD_BYTES]


def _salt(cost: int, rng: random.Random) -> bytes:
    if not MIN_COST <= cost <= MAX_COST:
        raise ValueError(f"bcrypt cost {cost} outside [{MIN_COST}, {MAX_COST}]")
    encoded = base64.b64encode(rng.randbytes(16)).rstrip(b"=").translate(_TO_BCRYPT_B64)
    return b"$2a$%02d$" % cost + encoded


def hash_password(password: str | bytes, cost: int, rng: random.Random) -> bytes:
    """The bcrypt hash of ``password`` at ``cost`` (etcd's --bcrypt-cost), salted from ``rng``."""
    return bcrypt.hashpw(_password_bytes(password), _salt(cost, rng))


def password_matches(password: str | bytes, hashed: bytes) -> bool:
    """True if ``hashed`` is a bcrypt hash of ``password``; False for any malformed or empty hash."""
    try:
        return bcrypt.checkpw(_password_bytes(password), hashed)
    except ValueError:
        return False
