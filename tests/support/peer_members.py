"""Peer transports on real loopback sockets for tests: a member's transport with its listener, what it
received and reported, and its log lines."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import trio

from etcdx.net.peer_listener import hold_peer_port
from etcdx.net.tls import ServerTls
from etcdx.peer import PeerTransport
from etcdx.raft.messages import Message

CLUSTER_ID = 0xCDF818194E3A8C32


@dataclass(eq=False)
class Member:
    """One member's transport, its listener (``port``) and everything its callbacks saw."""

    id: int
    received: list[Message] = field(default_factory=list)
    unreachable: Counter = field(default_factory=Counter)
    snapshot_status: list[tuple[int, bool]] = field(default_factory=list)
    transport: PeerTransport | None = None
    port: int = 0
    listener_scope: trio.CancelScope | None = None
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def received_from(self, sender: int) -> list[Message]:
        return [m for m in self.received if m.sender == sender]

    async def start_listener(self, nursery: trio.Nursery, tls: ServerTls | None = None) -> None:
        """Listens on ``port`` (a free one the first time) until stop_listener."""
        scope = trio.CancelScope()
        self.listener_scope = scope

        async def listen(task_status=trio.TASK_STATUS_IGNORED):
            with scope:
                await hold_peer_port(
                    "127.0.0.1", self.port, tls=tls, handler=self.transport.handle_connection, task_status=task_status
                )

        self.port = await nursery.start(listen)

    def stop_listener(self) -> None:
        self.listener_scope.cancel()


async def start_member(
    nursery: trio.Nursery, member_id: int, *, cluster_id: int = CLUSTER_ID, tls: ServerTls | None = None, **options
) -> Member:
    """A member with a running transport (no peers yet) and a listener on a free loopback port."""
    member = Member(member_id, scheme="https" if tls is not None else "http")
    member.transport = PeerTransport(
        member_id,
        cluster_id,
        {},
        on_message=member.received.append,
        on_unreachable=lambda peer: member.unreachable.update([peer]),
        on_snapshot_status=lambda peer, failed: member.snapshot_status.append((peer, failed)),
        **options,
    )
    await nursery.start(member.transport.run)
    await member.start_listener(nursery, tls)
    return member


def connect_all(members: list[Member]) -> None:
    for a in members:
        for b in members:
            if a is not b:
                a.transport.add_peer(b.id, [b.url])


async def wait_until(predicate, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


class LogLines(logging.Handler):
    """The records of the etcdx.peer logger: (message, fields) pairs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, dict]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), getattr(record, "fields", {})))

    def named(self, message: str) -> list[dict]:
        return [fields for msg, fields in self.lines if msg == message]


def attach_log() -> tuple[LogLines, partial]:
    """A LogLines on etcdx.peer, and the function that detaches it."""
    lines = LogLines()
    logger = logging.getLogger("etcdx.peer")
    logger.addHandler(lines)
    return lines, partial(logger.removeHandler, lines)
