"""One epoll set of its own for the idle client connections of a listener, served by one task.

trio's ``wait_readable`` re-arms a one-shot epoll registration at every wait (one ``epoll_ctl``) and wakes the
waiting task for every read (a scheduler pass). With many connections each carrying one or two requests per read
(16 clients over 8 connections), those two costs are a large share of a request's CPU. Here a connection that
waits for its next read *parks* at the hub instead: its socket stays registered (level-triggered) in the hub's
own epoll set while it is parked, and the hub's one task, woken once for all the connections that became
readable, reads each one and lets the connection handle the read in place (``Parked.take_parked``) without
waking the connection's task. Only a read the connection cannot handle without waiting (end of stream, an
error, a read too large to take at once, a backlog of output) wakes its task, with what it must go on with.

Invariant: a socket is armed (EPOLLIN) in the hub's set exactly while its connection is parked; the hub never
touches a connection that is not parked, so a connection's reads are handled by one task at a time, in order.
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
        self._parked: dict[int, _Park] = {}
        self._registered: dict[int, bool] = {}  # fd -> armed (EPOLLIN) or disarmed (no events), in our set

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
                self._epoll = None
                for fd in list(self._parked):  # their tasks are being cancelled with ours, or will find it closed
                    self._wake(fd, error=trio.ClosedResourceError("the read hub stopped"))

    @property
    def running(self) -> bool:
        return self._epoll is not None

    async def wait(self, connection: Parked, fd: int) -> object:
        """Parks ``connection`` (its socket ``fd``) until a read needs its task: returns what the connection's
        take_parked returned for it, or the read itself (bytes: b"" at the end of the stream) when the hub did
        not hand it over; raises what take_parked raised."""
        if self._epoll is None:
            raise trio.ClosedResourceError("the read hub is not running")
        self._arm(fd, True)
        park = self._parked[fd] = _Park(connection, trio.lowlevel.current_task())

        def abort(_: object) -> trio.lowlevel.Abort:
            self._parked.pop(fd, None)
            self._arm(fd, False)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if park.error is not None:
            raise park.error
        return park.result

    def forget(self, fd: int) -> None:
        """Before the socket ``fd`` closes: leaves the hub's set (so a later socket with its number starts clean)."""
        self._parked.pop(fd, None)
        if self._registered.pop(fd, None) is not None and self._epoll is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def _serve(self, fd: int) -> None:
        park = self._parked.get(fd)
        if park is None:
            return  # reported by the poll, then unparked before its turn in the same round
        try:
            data = os.read(fd, self._read_size)
        except BlockingIOError:
            return  # readable, then drained: stays parked
        except OSError:
            data = b""  # a reset connection reads as the end of the stream
        if not data:
            self._wake(fd, result=data)
            return
        try:
            rest = park.connection.take_parked(data)
        except Exception as exc:  # the connection's task raises it, as if it had handled the read itself
            self._wake(fd, error=exc)
            return
        if rest is not None:
            self._wake(fd, result=rest)

    def _wake(self, fd: int, *, result: object = None, error: BaseException | None = None) -> None:
        park = self._parked.pop(fd)
        park.result, park.error = result, error
        self._arm(fd, False)
        trio.lowlevel.reschedule(park.task)

    def _arm(self, fd: int, armed: bool) -> None:
        """Sets ``fd``'s interest in our set: EPOLLIN while its connection is parked, none otherwise. Disarming
        never raises (a socket that closed meanwhile has left the set by itself); arming a closed socket raises
        trio.ClosedResourceError, in the task that parks."""
        epoll = self._epoll
        if epoll is None or self._registered.get(fd) == armed:
            return
        flags = select.EPOLLIN if armed else 0
        try:
            if fd in self._registered:
                epoll.modify(fd, flags)
            else:
                epoll.register(fd, flags)
        except OSError as exc:
            if not armed:
                self._registered.pop(fd, None)
                return
            if exc.errno == errno.ENOENT:  # the kernel dropped it when its file closed: a new socket, same number
                epoll.register(fd, flags)
            elif exc.errno == errno.EEXIST:
                epoll.modify(fd, flags)
            elif exc.errno == errno.EBADF:
                self._registered.pop(fd, None)
                raise trio.ClosedResourceError("the socket is closed") from exc
            else:
                raise
        self._registered[fd] = armed
