"""etcd's "simple" tokens: an opaque random string each member maps to a user name, for a TTL.

A token is ``<16 random letters>.<raft index of the Authenticate entry>``. The API layer draws the
letters (``new_prefix``) before proposing Authenticate; every member then applies the entry and
``assign``s the same token, so any member accepts it. A token lives ``ttl`` seconds after its last
use (etcd's --auth-token-ttl, default 300); it dies at once when its user is deleted or changes
password, and every token dies when auth is disabled. A user holds at most a bounded number of
tokens; a new one evicts that user's oldest.

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
    """Token -> (user, expiry) for one member.

    Invariants: every token is in exactly one user's book; a user holds at most
    ``max_tokens_per_user`` tokens (a new one evicts that user's oldest, so a client that
    authenticates in a loop cannot grow the member's memory); an entry outlives its expiry only
    until the next ``info`` of it or ``purge_expired``.
    """

    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS, max_tokens_per_user: int = 1024) -> None:
        if ttl_seconds <= 0 or max_tokens_per_user <= 0:
            raise ValueError("simple token TTL and per-user cap must be positive")
        self._ttl = ttl_seconds
        self._cap = max_tokens_per_user
        self._owner: dict[str, str] = {}
        self._books: dict[str, dict[str, float]] = {}  # user -> token -> expiry, oldest first
        self._enabled = False

    def __len__(self) -> int:
        return len(self._owner)

    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False
        self._owner.clear()
        self._books.clear()

    def assign(self, username: str, revision: int, now: float, *, simple_prefix: str = "", index: int = 0) -> str:
        if len(simple_prefix) != PREFIX_LETTERS:
            raise ValueError("a simple token needs the random prefix drawn before proposing")
        token = f"{simple_prefix}.{index}"
        self._drop(token)
        book = self._books.setdefault(username, {})
        while len(book) >= self._cap:
            self._drop(next(iter(book)))
        book[token] = now + self._ttl
        self._owner[token] = username
        return token

    def info(self, token: str, now: float, current_revision: int) -> AuthInfo:
        username = self._owner.get(token) if self._enabled else None
        if username is None:
            raise errors.ERR_INVALID_AUTH_TOKEN
        if self._books[username][token] <= now:
            self._drop(token)
            raise errors.ERR_INVALID_AUTH_TOKEN
        self._books[username][token] = now + self._ttl
        return AuthInfo(username, current_revision)

    def invalidate_user(self, username: str) -> None:
        for token in self._books.pop(username, {}):
            del self._owner[token]

    def purge_expired(self, now: float) -> int:
        """Drop expired tokens (call from a periodic tick so memory stays bounded); returns how many."""
        dead = [t for book in self._books.values() for t, expiry in book.items() if expiry <= now]
        for token in dead:
            self._drop(token)
        return len(dead)

    def _drop(self, token: str) -> None:
        username = self._owner.pop(token, None)
        if username is None:
            return
        book = self._books[username]
        del book[token]
        if not book:
            del self._books[username]
