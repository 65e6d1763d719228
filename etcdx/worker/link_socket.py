"""One end of a member link connection (link_frames.py): frames in, frames out.

Output: ``queue`` appends a frame, ``flush_now`` writes everything queued in one non-blocking write; what the
socket does not take waits for the writer task, which also sends what ``flush_soon`` leaves it. So a batch of
frames queued in one turn of the event loop costs one system call, and a full socket never blocks the caller.
Input: ``run`` waits for readability, reads once, and hands the complete frames of each read to the caller's
``on_frames``, which may wait (back-pressure: nothing more is read meanwhile) or raise LinkError. ``run``
returns when the peer closes, the connection fails, or a frame breaks the protocol (LinkError, logged).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import trio

from etcdx.log import get_logger
from etcdx.worker.link_frames import LinkError, take_frames

log = get_logger("etcdx.worker")

READ_SIZE = 256 * 1024


class LinkSocket:
    def __init__(self, stream: trio.SocketStream, max_frame: int) -> None:
        self._stream = stream
        self._socket = stream.socket
        self._max_frame = max_frame
        self._out = bytearray()
        self._wake = trio.Event()  # the writer has something to send
        self._room = trio.Event()  # set whenever the writer has emptied the queue
        self._stalled = False  # the socket refused part of the queue: only the writer writes until it drains
        self.broken = False

    def backlog(self) -> int:
        return len(self._out)

    def queue(self, frame: bytes) -> None:
        """Queues ``frame``; dropped if the connection is broken (nobody could read it)."""
        if not self.broken:
            self._out += frame

    def flush_soon(self) -> None:
        if self._out:
            self._wake.set()

    def flush_now(self) -> None:
        if not self._out or self._stalled or self.broken:
            return
        self._write()
        if self._out and not self.broken:
            self._stalled = True
            self._wake.set()

    def _write(self) -> None:
        try:
            written = os.write(self._socket.fileno(), self._out)
        except BlockingIOError:
            return
        except OSError:
            self.broken = True  # the reader sees the end of the connection too; nothing queued can be sent
            self._out.clear()
            self._wake.set()
            return
        del self._out[:written]

    async def room(self) -> None:
        """Waits until the queue has been sent."""
        while self._out and not self.broken:
            self._room = trio.Event()
            self.flush_soon()
            await self._room.wait()

    async def run(self, on_frames: Callable[[list[bytes]], Awaitable[None]]) -> None:
        """Reads and writes until the connection ends; closes it then."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                try:
                    await self._reader(on_frames)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self.broken = True
            self._room.set()
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    async def _reader(self, on_frames: Callable[[list[bytes]], Awaitable[None]]) -> None:
        buffer = bytearray()
        while True:
            await trio.lowlevel.wait_readable(self._socket)
            try:
                data = os.read(self._socket.fileno(), READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                return
            buffer += data
            try:
                frames = take_frames(buffer, self._max_frame)
                if frames:
                    await on_frames(frames)
            except LinkError as exc:
                log.warning("member link: protocol error; closing the connection", error=str(exc))
                return

    async def _writer(self) -> None:
        while not self.broken:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._out and not self.broken:
                await trio.lowlevel.wait_writable(self._socket)
                self._write()
            self._stalled = False
            self._room.set()
