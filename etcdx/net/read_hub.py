"""One epoll set of its own for the idle client connections of a listener, served by one task.

trio's ``wait_readable`` re-arms a one-shot epoll registration at every wait (one ``epoll_ctl``) and wakes the
waiting task for every read (a scheduler pass). With many connections each carrying one or two requests per read
(16 clients over 8 connections), those two costs are a large share of a request's CPU. Here a connection that
waits for its next read *parks* at the hub instead: its socket stays registered (level-triggered) in the hub's
own epoll set while it is parked, and the hub's one task, woken once for all the connections that became
readable, reads each one and lets the connection handle the read in place (``Parked.take_parked``) without
waking the connection's task. Only a read the connection cannot handle without waiting (end of stream, an
error, a read too large to take at once, a backlog of output) wakes its task, with what it must go on with.

Invariant: a socket is in the hub's set exactly while its connection is parked; the hub never touches a connection
that is not parked, so a connection's reads are handled by one task at a time, in order.

What a connection does in take_parked runs in the hub's task: a task it starts (a handler's, with the nursery's
start_soon) copies the hub task's context variables, not the connection task's (the connection path sets none).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
from typing import Protocol

import trio

MAX_EVENTS = 256


class Parked(Protocol):
    def take_parked(self, data: bytes) -> object | None:
        """Handles ``data`` (a read, never empty) in the hub's task, without waiting. Returns None when done and
        the connection stays parked; otherwise what its task must go on with (the hub wakes it with that)."""


class _Park:
    """A parked connection: its task, and what the hub wakes it with (a result, or an exception to raise)."""

    __slots__ = ("connection", "task", "result", "error")

    def __init__(self, connection: Parked, task: trio.lowlevel.Task) -> None:
        self.connection = connection
        self.task = task
        self.result: object = None
        self.error: BaseException | None = None


class ReadHub:
    def __init__(self, read_size: int) -> None:
        self._read_size = read_size  # the most one read takes from a socket
        self._epoll: select.epoll | None = None
        # Invariant: a socket is in the epoll set exactly while its connection is parked here (registered when it
        # parks, removed when it is woken, aborted or forgotten): the kernel reports hang-ups and errors of any
        # registered socket whatever its interest, so a socket left in the set unparked would be reported at
        # every round of this level-triggered set and keep the hub spinning.
        self._parked: dict[int, _Park] = {}

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serves the parked connections until cancelled."""
        with select.epoll() as epoll:
            self._epoll = epoll
            task_status.started()
            try:
                while True:
                    await trio.lowlevel.wait_readable(epoll.fileno())
                    for fd, _ in epoll.poll(0, MAX_EVENTS):
                        self._serve(fd)
            finally:
                parked, self._parked = self._parked, {}
                self._epoll = None
                for park in parked.values():  # their tasks are being cancelled with ours, or will find it closed
                    park.error = trio.ClosedResourceError("the read hub stopped")
                    trio.lowlevel.reschedule(park.task)

    @property
    def running(self) -> bool:
        return self._epoll is not None

    async def wait(self, connection: Parked, fd: int) -> object:
        """Parks ``connection`` (its socket ``fd``) until a read needs its task: returns what the connection's
        take_parked returned for it, or the read itself (bytes: b"" at the end of the stream) when the hub did
        not hand it over; raises what take_parked raised, trio.ClosedResourceError for a closed socket or a hub
        that stopped, and trio.BusyResourceError if another task waits for the same socket."""
        epoll = self._epoll
        if epoll is None:
            raise trio.ClosedResourceError("the read hub is not running")
        if fd in self._parked:
            raise trio.BusyResourceError("another task is already waiting for this socket's reads")
        try:
            epoll.register(fd, select.EPOLLIN)
        except OSError as exc:
            if exc.errno != errno.EEXIST:  # EEXIST cannot happen (the invariant); if it did, the socket is in the set
                raise trio.ClosedResourceError(f"cannot wait for the socket: {exc}") from exc
            epoll.modify(fd, select.EPOLLIN)
        park = self._parked[fd] = _Park(connection, trio.lowlevel.current_task())

        def abort(_: object) -> trio.lowlevel.Abort:
            self._unpark(fd, park)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if park.error is not None:
            raise park.error
        return park.result

    def forget(self, fd: int) -> None:
        """Before the socket ``fd`` closes: nothing of it is left in the hub (a later socket with its number starts
        clean). A no-op unless its connection is parked."""
        park = self._parked.get(fd)
        if park is not None:
            self._unpark(fd, park)

    def _serve(self, fd: int) -> None:
        park = self._parked.get(fd)
        if park is None:  # cannot happen (see the invariant); never spin on it
            self._unregister(fd)
            return
        try:
            data = os.read(fd, self._read_size)
        except BlockingIOError:
            return  # readable, then drained: stays parked
        except OSError:
            data = b""  # a reset connection reads as the end of the stream
        if not data:
            self._wake(fd, park, result=data)
            return
        try:
            rest = park.connection.take_parked(data)
        except Exception as exc:  # the connection's task raises it, as if it had handled the read itself
            self._wake(fd, park, error=exc)
            return
        if rest is not None:
            self._wake(fd, park, result=rest)

    def _wake(self, fd: int, park: _Park, *, result: object = None, error: BaseException | None = None) -> None:
        """Wakes ``park``'s task with ``result`` or ``error``, unless it left meanwhile (aborted while its
        connection handled the read)."""
        if self._parked.get(fd) is not park:
            return
        self._unpark(fd, park)
        park.result, park.error = result, error
        trio.lowlevel.reschedule(park.task)

    def _unpark(self, fd: int, park: _Park) -> None:
        if self._parked.get(fd) is park:
            del self._parked[fd]
            self._unregister(fd)

    def _unregister(self, fd: int) -> None:
        """Removes ``fd`` from the set; never raises (a socket that closed has left it by itself)."""
        if self._epoll is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
