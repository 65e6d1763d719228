"""Pending ReadIndex requests at a leader (Raft thesis §6.4): each waits for a quorum of heartbeat
responses carrying its context, which proves the leader was still leader when the read index was taken.

Invariant: queue lists the contexts of `pending` in arrival order, and indexes never decrease along it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from etcdx.raft.messages import Message


@dataclass(slots=True)
class ReadIndexStatus:
    request: Message
    index: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, request: Message) -> None:
        ctx = request.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(request, index)
        self.queue.append(ctx)

    def recv_ack(self, member: int, ctx: bytes) -> set[int] | None:
        status = self.pending.get(ctx)
        if status is None:
            return None
        status.acks.add(member)
        return status.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release the request with context ctx and every one queued before it (a later quorum covers them)."""
        if ctx not in self.pending:
            return []
        n = self.queue.index(ctx) + 1
        released = [self.pending.pop(c) for c in self.queue[:n]]
        del self.queue[:n]
        return released

    def last_pending_context(self) -> bytes:
        return self.queue[-1] if self.queue else b""

    def reset(self) -> None:
        self.pending.clear()
        self.queue.clear()
