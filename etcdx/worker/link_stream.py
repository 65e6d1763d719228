"""A read worker's stream call over the member link (link_frames.py: OPEN ... END), as its routes use it: send the
client's messages, close the sending side, iterate over the member's messages until its status.

The link's reader hands this object the member's frames for the call (``deliver``, ``end``, ``grant``); the
route's task uses the rest. A route may name where a message can go without its task (``deliver_to``: the client
call's StreamSender.try_send_nowait): a message that arrives while none waits before it is sent from the reader
then, with no pass of the scheduler, and leaves with the reader's flush_deferred_replies. Only the member's END
(or the loss of the link) ends the call; a route that stops before then has the link send CANCEL
(link_client.MemberLink.open_stream).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable

import trio

from etcdx.errors import EtcdError, StatusCode
from etcdx.worker.link_credit import StreamCredit
from etcdx.worker.link_frames import HALF_CLOSE, encode_credit, encode_message, encode_signal
from etcdx.worker.link_socket import LinkSocket


class LinkStream:
    def __init__(self, call_id: int, socket: LinkSocket, flush_later: Callable[[], None]) -> None:
        self.call_id = call_id
        self._socket = socket
        self._flush_later = flush_later  # the link's output leaves at the next flush_deferred_replies
        self._credit = StreamCredit()
        self._inbox: deque[bytes] = deque()
        self._arrived = trio.Event()
        self.status: tuple[int, str] | None = None  # the member's END: (code, text)
        self._direct: Callable[[bytes], bool] | None = None
        self._in_hand = False  # the route's task holds a message it has not finished sending

    def deliver_to(self, direct: Callable[[bytes], bool]) -> None:
        """``direct(message)`` sends a message at once if it can (True), or sends nothing (False)."""
        self._direct = direct

    # -- the link's reader ------------------------------------------------------------------

    def deliver(self, message: bytes) -> None:
        self._credit.received(len(message))
        direct = self._direct
        if direct is not None and not self._inbox and not self._in_hand and direct(message):
            self._give_back(len(message))
            return
        self._inbox.append(message)
        self._arrived.set()

    def grant(self, size: int) -> None:
        self._credit.granted(size)

    def end(self, code: int, text: str) -> None:
        self.status = (code, text)
        self._credit.close()
        self._arrived.set()

    # -- the route's task -------------------------------------------------------------------

    async def send(self, message: bytes) -> None:
        """Sends one message once the member has room for it; nothing once the call has ended (what follows is
        its status)."""
        if await self._credit.wait_to_send():
            self._credit.sent(len(message))
            self._socket.queue(encode_message(self.call_id, message))
            self._socket.flush_now()

    def try_send_nowait(self, message: bytes) -> bool:
        """What ``send`` does if the member has room now, without a wait: the output leaves at the next
        flush_deferred_replies (the client connection's, once its read is handled). False (nothing sent) if it
        has none; True once the call has ended (the message is dropped, as ``send`` drops it)."""
        if self.status is not None:
            return True
        if not self._credit.may_send():
            return False
        self._credit.sent(len(message))
        self._socket.queue(encode_message(self.call_id, message))
        self._flush_later()
        return True

    def close_send(self) -> None:
        if self.status is None:
            self._socket.queue(encode_signal(HALF_CLOSE, self.call_id))
            self._socket.flush_now()

    async def responses(self) -> AsyncIterator[bytes]:
        """The member's messages as they come; ends at its status, raising it as an EtcdError unless OK. A
        message's credit goes back to the member once the caller has taken it (and asks for the next)."""
        while True:
            while self._inbox:
                message = self._inbox.popleft()
                self._in_hand = True
                try:
                    yield message
                finally:
                    self._in_hand = False
                self._give_back(len(message))
            if self.status is not None:
                code, text = self.status
                if code != StatusCode.OK:
                    raise EtcdError(status_code(code), text)
                return
            self._arrived = trio.Event()
            await self._arrived.wait()

    def _give_back(self, size: int) -> None:
        grant = self._credit.consumed(size)
        if grant and self.status is None:
            self._socket.queue(encode_credit(self.call_id, grant))
            self._socket.flush_soon()


def status_code(code: int) -> StatusCode:
    """The StatusCode of a code the member sent (UNKNOWN for one this build does not know)."""
    try:
        return StatusCode(code)
    except ValueError:
        return StatusCode.UNKNOWN
