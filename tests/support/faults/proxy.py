"""PeerProxies: a TCP proxy in front of each member's peer listener that can cut any (sender, receiver) pair.

Each member advertises its peer URL at its proxy's port; the proxy forwards to the member's
--listen-peer-urls port. One proxy serves every sender of one receiver, so it learns who sends from the
traffic itself: every peer frame (etcdx/peer/codec.py: length prefix, then a PeerFrame whose envelope names
sender and receiver) is decoded and forwarded whole, or not at all. Why frames and not one proxy port per
(sender, receiver) pair: a member's ID is computed from the peer URLs in --initial-cluster, so every member
must name a peer by the same URLs; per-pair ports would need per-member --initial-cluster lists and give
the members different IDs for one another.

A cut is per direction, ``sender -> receiver``, in one of two modes:
- ``blackhole``: frames of that direction are discarded while the connection stays up (a silent network);
- ``reset``: a connection carrying a frame of that direction is closed at once, and so is each new one
  (a refusing network); the sender sees broken connections and reconnects with its backoff.
Frames always cross whole, so a healed connection carries valid frames again. Receiver-to-sender frames on
a connection (refusals, snapshot acknowledgements) are judged by their own envelope, the reverse pair.

Routes may be added while running (``add_route``: a member rejoining under a new peer URL). A member that
rejoins under a new member ID needs nothing here: frames are judged by the ids they carry, and cuts name
the ids the caller knows now.

The proxies run on trio in one thread; ``cut``/``heal``/``add_route`` may be called from any thread.
"""

from __future__ import annotations

import threading

import trio

from etcdx.peer.codec import LENGTH_BYTES, CodecError, FrameReader, decode_frame

BLACKHOLE, RESET = "blackhole", "reset"


class PeerProxies:
    def __init__(self, routes: dict[int, int]) -> None:
        """``routes``: proxy port -> member's listen peer port (both on 127.0.0.1)."""
        self.routes = routes
        self._lock = threading.Lock()
        self._cuts: dict[tuple[int, int], str] = {}
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self.frames_dropped = 0
        self.connections_reset = 0

    # -- control (any thread) --------------------------------------------------------------

    def cut(self, sender: int, receiver: int, mode: str) -> None:
        with self._lock:
            self._cuts[(sender, receiver)] = mode

    def heal(self) -> None:
        with self._lock:
            self._cuts.clear()

    def rule(self, sender: int, receiver: int) -> str | None:
        with self._lock:
            return self._cuts.get((sender, receiver))

    def add_route(self, listen: int, target: int) -> None:
        """Starts proxying port ``listen`` to the member's peer port ``target``; returns once it listens."""
        trio.from_thread.run(self._listen, listen, target, trio_token=self._token)
        self.routes[listen] = target

    def start(self) -> PeerProxies:
        ready = threading.Event()
        failure: list[BaseException] = []

        def runner() -> None:
            try:
                trio.run(self._main, ready)
            except BaseException as exc:  # reported to start(), which raises it
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=runner, name="peer-proxies", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"peer proxies did not start: {failure}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._scope is not None:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(timeout=10)
        self._thread = None

    # -- the proxies (trio thread) -----------------------------------------------------------

    async def _main(self, ready: threading.Event) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._scope, self._nursery = nursery.cancel_scope, nursery
            for listen, target in self.routes.items():
                await self._listen(listen, target)
            ready.set()

    async def _listen(self, listen: int, target: int) -> None:
        listeners = await trio.open_tcp_listeners(listen, host="127.0.0.1")
        self._nursery.start_soon(trio.serve_listeners, self._handler(target), listeners)

    def _handler(self, target: int):
        async def handle(inbound: trio.SocketStream) -> None:
            try:
                outbound = await trio.open_tcp_stream("127.0.0.1", target)
            except OSError:
                await trio.aclose_forcefully(inbound)
                return
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, inbound, outbound, nursery.cancel_scope)
                    nursery.start_soon(self._pump, outbound, inbound, nursery.cancel_scope)
            finally:
                await trio.aclose_forcefully(inbound)
                await trio.aclose_forcefully(outbound)

        return handle

    async def _pump(self, source: trio.abc.Stream, sink: trio.abc.Stream, connection: trio.CancelScope) -> None:
        """Forwards whole frames from ``source`` to ``sink`` as the cuts allow; ends the connection on EOF,
        an error, bytes that are not frames, or a ``reset`` cut."""
        reader = FrameReader()
        try:
            while True:
                data = await source.receive_some(65536)
                if not data:
                    return
                out = []
                for payload in reader.feed(data):
                    frame = decode_frame(payload)
                    rule = self.rule(frame.sender, frame.receiver)
                    if rule == RESET:
                        self.connections_reset += 1
                        return
                    if rule == BLACKHOLE:
                        self.frames_dropped += 1
                        continue
                    out.append(len(payload).to_bytes(LENGTH_BYTES, "big") + payload)
                if out:
                    await sink.send_all(b"".join(out))
        except (CodecError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        finally:
            connection.cancel()
