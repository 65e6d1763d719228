"""etcd's "simple" tokens: an opaque random string each member maps to a user name, for a TTL.

A token is ``<16 random letters>.<raft index of the Authenticate entry>``. The API layer draws the
letters (``new_prefix``) before proposing Authenticate; every member then applies the entry and
``assign``s the same token, so any member accepts it. A token lives ``ttl`` seconds after its last
use (etcd's --auth-token-ttl, default 300); it dies at once when its user is deleted or changes
password, and every token dies when auth is disabled.

A simple token is not signed and carries no auth revision: ``info`` stamps the store's current
revision, so the request is then checked against the permissions of the moment it arrived.
"""

from __future__ import annotations

import random
import string

from etcdx import errors
from etcdx.auth.tokens import AuthInfo

DEFAULT_TTL_SECONDS = 300.0
PREFIX_LETTERS = 16
_LETTERS = string.ascii_letters


def new_prefix(rng: random.Random) -> str:
    """The random part of a new token (drawn once, where the Authenticate request enters the member)."""
    return "".join(rng.choice(_LETTERS) for _ in range(PREFIX_LETTERS))


class SimpleTokens:
    """Token -> (user, expiry) for one member. Invariant: no entry outlives its expiry by more than one purge."""

    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        if ttl_seconds <= 0:
            raise ValueError("simple token TTL must be positive")
        self._ttl = ttl_seconds
        self._tokens: dict[str, tuple[str, float]] = {}
        self._enabled = False

    def __len__(self) -> int:
        return len(self._tokens)

    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False
        self._tokens.clear()

    def assign(self, username: str, revision: int, now: float, *, simple_prefix: str = "", index: int = 0) -> str:
        if len(simple_prefix) != PREFIX_LETTERS:
            raise ValueError("a simple token needs the random prefix drawn before proposing")
        token = f"{simple_prefix}.{index}"
        self._tokens[token] = (username, now + self._ttl)
        return token

    def info(self, token: str, now: float, current_revision: int) -> AuthInfo:
        entry = self._tokens.get(token) if self._enabled else None
        if entry is None or entry[1] <= now:
            self._tokens.pop(token, None)
            raise errors.ERR_INVALID_AUTH_TOKEN
        username = entry[0]
        self._tokens[token] = (username, now + self._ttl)
        return AuthInfo(username, current_revision)

    def invalidate_user(self, username: str) -> None:
        for token in [t for t, (user, _) in self._tokens.items() if user == username]:
            del self._tokens[token]

    def purge_expired(self, now: float) -> int:
        """Drop expired tokens (call from a periodic tick so memory stays bounded); returns how many."""
        dead = [t for t, (_, expiry) in self._tokens.items() if expiry <= now]
        for token in dead:
            del self._tokens[token]
        return len(dead)
