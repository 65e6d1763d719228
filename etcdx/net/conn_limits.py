"""Bounds, in time and in memory, on what a client connection can make the server hold.

Time: a connection must show its protocol (the HTTP/2 preface or a complete HTTP/1.x request line) within
``handshake_timeout`` of its accept; an HTTP/1.1 request must arrive whole (head within ``head_timeout``,
head and body within ``request_timeout``, both from its first byte), and a keep-alive connection that starts
no request within ``idle_timeout`` is closed. A byte every second therefore buys an attacker at most
``request_timeout`` per request.

Memory: an HTTP/1.1 connection reads at most ``READ_CHUNK`` bytes at a time and may buffer ``FREE_BYTES`` of
an unfinished request (and read a chunk on top) on its own; for every further ``READ_CHUNK`` it buffers it
holds a unit of one ``ReadBudget`` shared by all connections. A connection that finds the budget spent stops
reading (TCP pushes back on its client) until others release units or its deadline cuts it off. Buffered
request bytes are therefore bounded by open connections x (``FREE_BYTES`` + ``READ_CHUNK``) + the budget,
and open connections by ``max_connections``. Connections that wait between requests hold nothing.
"""

from __future__ import annotations

import dataclasses
import resource
from dataclasses import dataclass

import trio

READ_CHUNK = 8 * 1024
FREE_BYTES = 8 * 1024
# File descriptors kept for the WAL, the backend, logs and peers when the connection cap comes from the limit.
RESERVED_FDS = 256


def default_max_connections() -> int:
    """Open client connections allowed: the process's descriptor limit less a reserve, so connections can
    never take the descriptors the WAL and the backend need."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 65536
    return max(64, soft - RESERVED_FDS)


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits of one client listener (seconds and bytes; the module docstring says what each bounds)."""

    handshake_timeout: float = 10.0
    head_timeout: float = 10.0
    request_timeout: float = 30.0
    idle_timeout: float = 60.0
    response_timeout: float = 30.0  # to write a whole (non-streamed) response to a client that does not read
    max_head_bytes: int = 64 * 1024  # request line and headers; more is 431
    read_budget_bytes: int = 64 * 1024 * 1024
    max_connections: int | None = None  # None: default_max_connections()

    def connection_cap(self) -> int:
        return self.max_connections if self.max_connections is not None else default_max_connections()

    def shared_by(self, listeners: int) -> ConnectionLimits:
        """The limits of each of ``listeners`` listeners that share these: the connection cap and the read
        budget divided between them."""
        return dataclasses.replace(
            self,
            max_connections=max(1, self.connection_cap() // listeners),
            read_budget_bytes=max(READ_CHUNK, self.read_budget_bytes // listeners),
        )


DEFAULT_LIMITS = ConnectionLimits()


class BudgetExceeded(Exception):
    """A request needs more of the read budget than there is in all."""


class ReadBudget:
    """Units of ``READ_CHUNK`` bytes shared by the connections of one listener for the request bytes they
    buffer beyond ``FREE_BYTES``. A connection takes the units it lacks all at once (never some while it
    waits for the rest), so two requests whose declared bodies fit in the budget one after the other cannot
    hold each other up; what cannot wait forever is only a head or a chunked body, which the time limits
    cut."""

    def __init__(self, total_bytes: int) -> None:
        self.total = max(1, total_bytes // READ_CHUNK)
        self._free = self.total
        self._lot = trio.lowlevel.ParkingLot()

    def hold(self) -> BudgetHold:
        return BudgetHold(self)

    async def _take(self, units: int) -> None:
        if units > self.total:
            raise BudgetExceeded(units)
        while self._free < units:
            await self._lot.park()
        self._free -= units

    def _give(self, units: int) -> None:
        self._free += units
        self._lot.unpark_all()


def _units_for(buffered_bytes: int) -> int:
    return max(0, -(-(buffered_bytes - FREE_BYTES) // READ_CHUNK))


class BudgetHold:
    """The units one connection holds. Invariant: ``held`` units are taken from the budget and not given
    back; ``reserve``, ``settle`` and ``release`` are its only mutators, and ``release`` must run when the
    connection ends."""

    def __init__(self, budget: ReadBudget) -> None:
        self._budget = budget
        self.held = 0

    async def reserve(self, buffered_bytes: int) -> None:
        """Holds enough units for a connection that buffers ``buffered_bytes`` to read one more chunk,
        waiting for the missing ones; raises BudgetExceeded if the whole budget is not enough."""
        need = _units_for(buffered_bytes)
        if need > self.held:
            await self._budget._take(need - self.held)
            self.held = need

    def settle(self, buffered_bytes: int) -> None:
        """Gives back the units beyond what ``buffered_bytes`` needs (once a request is handled)."""
        need = _units_for(buffered_bytes)
        if need < self.held:
            self._budget._give(self.held - need)
            self.held = need

    def release(self) -> None:
        self.settle(0)
