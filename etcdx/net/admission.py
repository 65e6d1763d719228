"""The cap on open client connections of one listener.

At most ``cap`` connections are open at once. A connection that arrives at the cap takes the place of the
oldest connection still in its handshake (one that has not yet shown its protocol), which is cancelled;
when every open connection is past its handshake, the new one is refused (closed at once). So a flood of
connections that never speak cannot lock out a client that does, and connections can never use up the
descriptors the rest of the member needs.
"""

from __future__ import annotations

import trio

from etcdx.log import get_logger

log = get_logger("etcdx.net")


class Ticket:
    """One admitted connection. ``handshake_done`` is called once its protocol is known."""

    def __init__(self, slots: ConnectionSlots, scope: trio.CancelScope) -> None:
        self._slots = slots
        self.scope = scope
        self.counted = True

    def handshake_done(self) -> None:
        self._slots.handshake_done(self)


class ConnectionSlots:
    """Invariant: ``open`` counts the admitted tickets neither left nor evicted; ``_handshaking`` holds, oldest
    first, those of them whose handshake is not done."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self._handshaking: dict[int, Ticket] = {}

    def admit(self, scope: trio.CancelScope) -> Ticket | None:
        """A ticket for a new connection served inside ``scope``, or None when it must be refused."""
        if self.open >= self.cap:
            if not self._handshaking:
                self.refused += 1
                if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                    log.warning("client connection refused: too many open connections", cap=self.cap)
                return None
            oldest = self._handshaking.pop(next(iter(self._handshaking)))
            oldest.counted = False
            oldest.scope.cancel()
            self.open -= 1
            self.evicted += 1
        ticket = Ticket(self, scope)
        self._handshaking[id(ticket)] = ticket
        self.open += 1
        return ticket

    def handshake_done(self, ticket: Ticket) -> None:
        self._handshaking.pop(id(ticket), None)

    def leave(self, ticket: Ticket) -> None:
        self._handshaking.pop(id(ticket), None)
        if ticket.counted:
            ticket.counted = False
            self.open -= 1
