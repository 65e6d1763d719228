"""The cap on open client connections of one listener.

At most ``cap`` connections are open at once. A connection that arrives at the cap takes the place of the
connection idle the longest: one still in its handshake (it has not yet shown its protocol) or an HTTP/1.1
keep-alive connection between requests; that one is cancelled (closed without an answer, which clients
expect of an idle keep-alive connection). When no open connection is idle, the new one is refused (closed
at once). So a flood of connections that never speak cannot lock out a client that does, and connections
can never use up the descriptors the rest of the member needs.
"""

from __future__ import annotations

import trio

from etcdx.log import get_logger

log = get_logger("etcdx.net")


class Ticket:
    """One admitted connection, served inside ``scope``; it starts idle (in its handshake)."""

    def __init__(self, slots: ConnectionSlots, scope: trio.CancelScope) -> None:
        self._slots = slots
        self.scope = scope
        self.counted = True

    def set_idle(self, idle: bool) -> None:
        """Marks the connection idle (it may be evicted) or busy (it may not)."""
        self._slots.set_idle(self, idle)


class ConnectionSlots:
    """Invariant: ``open`` counts the admitted tickets neither left nor evicted; ``_idle`` holds those of them
    that are idle, longest idle first."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self._idle: dict[int, Ticket] = {}

    def admit(self, scope: trio.CancelScope) -> Ticket | None:
        """A ticket for a new connection served inside ``scope``, or None when it must be refused."""
        if self.open >= self.cap:
            if not self._idle:
                self.refused += 1
                if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                    log.warning("client connections refused: too many open", cap=self.cap, refused=self.refused)
                return None
            longest = self._idle.pop(next(iter(self._idle)))
            longest.counted = False
            longest.scope.cancel()
            self.open -= 1
            self.evicted += 1
        ticket = Ticket(self, scope)
        self._idle[id(ticket)] = ticket
        self.open += 1
        return ticket

    def set_idle(self, ticket: Ticket, idle: bool) -> None:
        self._idle.pop(id(ticket), None)
        if idle and ticket.counted:
            self._idle[id(ticket)] = ticket

    def leave(self, ticket: Ticket) -> None:
        self._idle.pop(id(ticket), None)
        if ticket.counted:
            ticket.counted = False
            self.open -= 1
