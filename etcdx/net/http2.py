"""The sans-I/O HTTP/2 server connection driver (RFC 9113), as the gRPC layer uses it.

The driver is ``h2conn``: compiled (``_native/_h2conn``) or its pure-Python twin (``_native/h2conn_py``, the
readable specification, whose docstring has the bounds and the error rules). This module picks one, names its
events and errors, and builds connections with their per-connection reset bucket.
"""

from __future__ import annotations

from collections.abc import Callable

from etcdx._native import load
from etcdx._native.h2conn_py import (
    CONNECTION_WINDOW,
    HEADER_BUDGET,
    INITIAL_STREAM_WINDOW,
    MAX_HEADER_BLOCK_FRAMES,
    MAX_HEADER_LIST_SIZE,
    PREFACE,
    RESET_BURST,
    RESET_RATE,
    STREAM_CEILING,
    ConnectionEnded,
    Data,
    ProtocolError,
    RequestHeaders,
    StreamClosedError,
    StreamEnded,
    StreamReset,
    WindowOpened,
)
from etcdx.net.token_bucket import TokenBucket

h2conn = load("h2conn")
ServerConnection = h2conn.ServerConnection

__all__ = [
    "CONNECTION_WINDOW",
    "HEADER_BUDGET",
    "INITIAL_STREAM_WINDOW",
    "MAX_HEADER_BLOCK_FRAMES",
    "MAX_HEADER_LIST_SIZE",
    "PREFACE",
    "RESET_BURST",
    "RESET_RATE",
    "STREAM_CEILING",
    "ConnectionEnded",
    "Data",
    "ProtocolError",
    "RequestHeaders",
    "ServerConnection",
    "StreamClosedError",
    "StreamEnded",
    "StreamReset",
    "WindowOpened",
    "server_connection",
]


def _no_clock() -> float:
    return 0.0


def server_connection(
    max_concurrent_streams: int = STREAM_CEILING,
    *,
    ping_min_time: float = 5.0,
    clock: Callable[[], float] = _no_clock,
    shared_resets: TokenBucket | None = None,
    header_budget: int = HEADER_BUDGET,
) -> ServerConnection:
    """A new server connection. ``clock`` gives seconds (monotonic) for the reset rate and the ping policy (the
    default one stands still: resets never refill and every ping after the first is too soon);
    ``max_concurrent_streams`` above STREAM_CEILING counts as STREAM_CEILING (and is advertised so);
    ``shared_resets`` is the bucket of resets this connection shares with others; ``header_budget`` bounds the
    header list bytes of its open streams together."""
    resets = TokenBucket(RESET_BURST, RESET_RATE, clock)
    return h2conn.ServerConnection(max_concurrent_streams, ping_min_time, clock, resets, shared_resets, header_budget)
