"""One link stream's flow control on one side of the member link (link_frames.py, CREDIT).

Each side may send a MESSAGE only while its credit is above zero; the peer hands credit back as it consumes
what arrived, half a window at a time, so a stream whose reader stops holds back only itself, and each side
buffers at most a window and one message per stream. A peer that sends past its credit breaks the protocol.
A message costs its bytes plus MESSAGE_COST (its frame's header), so empty messages are bounded too.
"""

from __future__ import annotations

import trio

from etcdx.worker.link_frames import STREAM_WINDOW, LinkError

MESSAGE_COST = 9  # what a MESSAGE costs beyond its message: the frame's length, kind and call id


class StreamCredit:
    def __init__(self) -> None:
        self._send_left = STREAM_WINDOW  # what this side may still send (bytes of messages, each plus MESSAGE_COST)
        self._receive_left = STREAM_WINDOW  # what the peer may still send
        self._consumed = 0  # what this side consumed since it last handed credit back
        self._room = trio.Event()  # set by a grant or the end; replaced by the next waiter once set
        self._closed = False

    async def wait_to_send(self) -> bool:
        """Waits until this side may send; False once the stream has ended (nothing may be sent then). Any
        number of tasks may wait: a grant wakes them all."""
        while self._send_left <= 0 and not self._closed:
            if self._room.is_set():
                self._room = trio.Event()
            await self._room.wait()
        return not self._closed

    def may_send(self) -> bool:
        """Whether this side may send now (its credit is above zero and the stream has not ended)."""
        return self._send_left > 0 and not self._closed

    def sent(self, size: int) -> None:
        """A message of ``size`` bytes was sent."""
        self._send_left -= size + MESSAGE_COST

    def granted(self, size: int) -> None:
        """The peer's CREDIT."""
        self._send_left += size
        self._room.set()

    def received(self, size: int) -> None:
        """A MESSAGE of ``size`` bytes arrived; LinkError if the peer had no credit left for it."""
        if self._receive_left <= 0:
            raise LinkError("a stream message past the sender's credit")
        self._receive_left -= size + MESSAGE_COST

    def consumed(self, size: int) -> int:
        """A message of ``size`` bytes was consumed; returns the credit to hand back now (0: none yet)."""
        self._consumed += size + MESSAGE_COST
        if self._consumed < STREAM_WINDOW // 2:
            return 0
        grant, self._consumed = self._consumed, 0
        self._receive_left += grant
        return grant

    def close(self) -> None:
        """The stream ended: whoever waits to send stops waiting."""
        self._closed = True
        self._room.set()
