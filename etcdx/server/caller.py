"""Who the client call being served acts as, for the proposals it makes (however deep in the server).

The API layer runs every client call inside ``acting_as(info)`` (an AuthInfo with an empty user when the call
came without one, or while auth is off); ``EtcdServer`` stamps each proposal made there with it, and apply
checks the proposal against the auth store with that stamp. A proposal made outside any call (lease expiry)
or inside ``as_member()`` (the NOSPACE alarm a client's write raised) is the member's own and is not stamped.
The value lives in a ContextVar: a trio task inherits it from the task that started it, and a synchronous
handler sees it only while it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar, Token

from etcdx.auth.tokens import AuthInfo

ANONYMOUS = AuthInfo("", 0)

_CALLER: ContextVar[AuthInfo | None] = ContextVar("etcdx_caller", default=None)


def current() -> AuthInfo | None:
    """The AuthInfo of the client call being served, or None for the member's own work."""
    return _CALLER.get()


def enter(info: AuthInfo | None) -> Token:
    """Starts acting as ``info`` (nobody: ANONYMOUS); ``leave`` with the token ends it (``acting_as`` without
    the context manager's cost, for the handlers that run per request in the connection's reader)."""
    return _CALLER.set(ANONYMOUS if info is None else info)


def leave(token: Token) -> None:
    _CALLER.reset(token)


@contextlib.contextmanager
def acting_as(info: AuthInfo | None) -> Iterator[None]:
    token = enter(info)
    try:
        yield
    finally:
        leave(token)


@contextlib.contextmanager
def as_member() -> Iterator[None]:
    token = _CALLER.set(None)
    try:
        yield
    finally:
        _CALLER.reset(token)
