"""PeerTransport: Raft messages between etcdx members over their peer URLs, on trio.

Sending side, per peer: one bounded queue and one outbound connection that drains it. The queue holds
``queue_size`` messages (etcd's 4096) while the connection is up, and ``down_queue_size`` (etcd's pipeline
buffer, 64) while it is being made. ``send`` never blocks: a message for a full queue is dropped and the
peer reported unreachable, as etcd does. A connection that cannot be made, or breaks, drops what is queued
and reports the peer unreachable, then is made again after an exponential backoff (``backoff_min``
doubling to ``backoff_max``; it starts over only after a connection that lasted ``backoff_max``), trying
the peer's URLs in turn. So memory per peer stays bounded, and a peer that comes back gets fresh messages,
not a backlog of stale ones; a batch being written when the connection breaks is lost too. Raft tolerates
all of these losses. A MsgSnap travels on a connection of its own, so
appends and heartbeats keep flowing: the message, then its data as compressed, checksummed chunks
(snapshot_stream), then the receiver's acknowledgement once it handed the whole message on;
``on_snapshot_status(peer, failed)`` reports the outcome. One snapshot per peer at a time: another one
meanwhile is dropped and reported failed at once.

Receiving side (``handle_connection``, fed by the peer listener): frames in order, each checked before use.
A frame from another cluster id, from a member id that ``remove_peer`` removed, or addressed to another
member is refused: the sender is told why (it logs that once), the connection closed, and the refusal
logged once per remote and reason. Bytes that do not decode (a bad length, bad protobuf, a local-only
message type, a snapshot stream out of order or corrupt) close the connection the same way, untold.
Nothing a peer sends ends the transport. Messages from one connection reach ``on_message`` in the order sent.
A ``members_request`` frame (a member joining with --initial-cluster-state existing, which knows no cluster id
yet) is answered with ``members_answer()`` and the connection closed. A peer that refuses this member's
messages because it was removed makes the transport call ``on_removed()``.

Callbacks are plain functions called from trio tasks (``on_unreachable`` also from inside ``send``); they
must not block, and an exception from them is logged and swallowed.

Calls (etcd's peer HTTP handlers for lease renewals, lease time-to-live and HashKV): ``call`` dials the peer
on a connection of its own, sends one PeerCall frame and reads one PeerReply frame; the receiver hands the
call to ``on_call`` (an async function: method, request bytes -> response bytes, or an EtcdError to answer
with) and closes the connection after the reply. A call gets the same envelope checks as a message.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import trio

from etcdx.errors import EtcdError, StatusCode
from etcdx.log import get_logger
from etcdx.net.sockets import remote_address
from etcdx.pb.etcdxpb import raft_pb2
from etcdx.peer.codec import (
    DEFAULT_MAX_FRAME,
    CodecError,
    FrameReader,
    decode_frame,
    decode_message_frame,
    encode_frame,
    encode_message_frame,
    message_from_pb,
    message_to_pb,
)
from etcdx.peer.snapshot_stream import DEFAULT_CHUNK_SIZE, SnapshotAssembler, SnapshotStreamError, chunks
from etcdx.raft.messages import LOCAL_MESSAGES, Message, MessageType

log = get_logger("etcdx.peer")

QUEUE_SIZE = 4096
"""Messages waiting per connected peer (etcd's streamBufSize)."""
DOWN_QUEUE_SIZE = 64
"""Messages waiting per peer while its connection is being made (etcd's pipeline buffer)."""
BATCH_MESSAGES = 512
BATCH_BYTES = 4 * 1024 * 1024
RECEIVE_BYTES = 256 * 1024
IDLE_CALL_CONNECTIONS = 4
"""Connections kept open per peer for the next call (see ``call``)."""
REMOVED_REFUSAL = "rejected stream from remote peer because it was removed"
MAX_LOGGED_REFUSALS = 4096
"""(remote, reason) pairs remembered to log each refusal once; forgotten all at once past this."""

OnMessage = Callable[[Message], None]
OnUnreachable = Callable[[int], None]
OnSnapshotStatus = Callable[[int, bool], None]
OnCall = Callable[[str, bytes], Awaitable[bytes]]


class _Refused(Exception):
    """A frame this member will not take: ``reason`` (etcd-like wording) and log fields."""

    def __init__(self, reason: str, sender: int, key: str, **fields) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sender = sender
        self.key = key
        self.fields = fields


@dataclass(eq=False)
class _Peer:
    id: int
    urls: list[str]
    send_channel: trio.MemorySendChannel
    receive_channel: trio.MemoryReceiveChannel
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    connection_scope: trio.CancelScope | None = None
    snapshot_scope: trio.CancelScope | None = None  # the snapshot being sent, if any
    next_url: int = 0
    active: bool = False
    active_since: float = 0.0  # trio time the current outbound connection came up
    sent_bytes: int = 0  # written to its connections (etcd_network_peer_sent_bytes_total)
    disconnects: int = 0  # times an active connection to it failed (etcd_network_disconnected_peers_total)
    dropping: bool = False


def _hex(member_id: int) -> str:
    return f"{member_id:x}"


class PeerTransport:
    """This member's side of the peer network: see the module docstring for the contracts, and the package
    docstring for how the server drives it. Ids are etcd member ids; ``peers`` maps each other member's id
    to its advertised peer URLs (http://, https://, unix://, unixs://)."""

    def __init__(
        self,
        member_id: int,
        cluster_id: int,
        peers: dict[int, list[str]],
        on_message: OnMessage,
        on_unreachable: OnUnreachable,
        on_snapshot_status: OnSnapshotStatus,
        client_tls: ssl.SSLContext | None = None,
        *,
        on_call: OnCall | None = None,
        queue_size: int = QUEUE_SIZE,
        down_queue_size: int = DOWN_QUEUE_SIZE,
        max_frame: int = DEFAULT_MAX_FRAME,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        dial_timeout: float = 1.0,
        backoff_min: float = 0.05,
        backoff_max: float = 2.0,
        removed: Iterable[int] = (),
        on_removed: Callable[[], None] | None = None,
        members_answer: Callable[[], bytes] | None = None,
    ) -> None:
        """``removed``: member ids removed from the cluster (refused from the start)."""
        self.member_id = member_id
        self.cluster_id = cluster_id
        self._on_message = on_message
        self._on_unreachable = on_unreachable
        self._on_snapshot_status = on_snapshot_status
        self._on_call = on_call
        self._client_tls = client_tls
        self._queue_size = queue_size
        self._down_queue_size = min(down_queue_size, queue_size)
        self._max_frame = max_frame
        self._chunk_size = chunk_size
        self._dial_timeout = dial_timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._peers: dict[int, _Peer] = {}
        # Frame bytes received per sender (etcd_network_peer_received_bytes_total).
        self.received_bytes: defaultdict[int, int] = defaultdict(int)
        self._removed: set[int] = set(removed)
        self._on_removed = on_removed
        self._members_answer = members_answer
        self._logged_refusals: set[tuple[str, str]] = set()
        self._nursery: trio.Nursery | None = None
        self._idle_calls: dict[int, list[trio.abc.Stream]] = {}  # per peer: connections kept for the next call
        for peer_id, urls in peers.items():
            self.add_peer(peer_id, urls)

    # -- membership ---------------------------------------------------------------------------

    def add_peer(self, peer_id: int, urls: Iterable[str]) -> None:
        """Starts sending to ``peer_id`` (no-op if it is known or is this member)."""
        if peer_id in self._peers or peer_id == self.member_id:
            return
        send_channel, receive_channel = trio.open_memory_channel(self._queue_size)
        peer = _Peer(peer_id, list(urls), send_channel, receive_channel)
        self._peers[peer_id] = peer
        if self._nursery is not None:
            self._nursery.start_soon(self._run_peer, peer)

    def update_peer(self, peer_id: int, urls: Iterable[str]) -> None:
        """New URLs for ``peer_id``: its connection is made anew to them."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        peer.urls = list(urls)
        peer.next_url = 0
        if peer.connection_scope is not None:
            peer.connection_scope.cancel()

    def remove_peer(self, peer_id: int) -> None:
        """Stops sending to ``peer_id`` and refuses whatever it sends from now on (a removed member id is
        never reused)."""
        self._removed.add(peer_id)
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            peer.scope.cancel()
            if peer.snapshot_scope is not None:
                peer.snapshot_scope.cancel()
            peer.send_channel.close()

    def peer_ids(self) -> list[int]:
        return sorted(self._peers)

    def active_since(self, peer_id: int) -> float | None:
        """When the outbound connection to ``peer_id`` came up (trio time), or None while it is down."""
        peer = self._peers.get(peer_id)
        return peer.active_since if peer is not None and peer.active else None

    def peer_stats(self) -> dict[int, _Peer]:
        """Every peer by member id, for /metrics (read only: activity and byte counts)."""
        return dict(self._peers)

    def is_active(self, peer_id: int) -> bool:
        """Whether the outbound connection to ``peer_id`` is up."""
        peer = self._peers.get(peer_id)
        return peer is not None and peer.active

    # -- running ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Runs the senders until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for peer in self._peers.values():
                    nursery.start_soon(self._run_peer, peer)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            idle, self._idle_calls = self._idle_calls, {}
            for stream in (s for streams in idle.values() for s in streams):
                await trio.aclose_forcefully(stream)

    # -- sending ------------------------------------------------------------------------------

    def send(self, messages: Iterable[Message]) -> None:
        """Queues each message for its receiver (``Message.to``); never blocks."""
        for m in messages:
            peer = self._peers.get(m.to)
            if peer is None:
                log.debug(
                    "ignored message send request; unknown remote peer target",
                    type=m.type.value,
                    unknown_target_peer_id=_hex(m.to),
                )
                continue
            if m.type is MessageType.SNAP:
                self._start_snapshot(peer, m)
                continue
            try:
                if not peer.active and peer.send_channel.statistics().current_buffer_used >= self._down_queue_size:
                    raise trio.WouldBlock
                peer.send_channel.send_nowait(m)
                peer.dropping = False
            except trio.WouldBlock:
                if not peer.dropping:  # once per run of drops, not per message
                    peer.dropping = True
                    log.warning(
                        "dropped internal Raft message since sending buffer is full (overloaded network)",
                        message_type=m.type.value,
                        local_member_id=_hex(self.member_id),
                        **{"from": _hex(m.sender)},
                        remote_peer_id=_hex(peer.id),
                        remote_peer_active=peer.active,
                    )
                self._call(self._on_unreachable, peer.id)

    async def _run_peer(self, peer: _Peer) -> None:
        with peer.scope:
            await self._stream_loop(peer)

    async def _stream_loop(self, peer: _Peer) -> None:
        backoff = self._backoff_min
        while True:
            try:
                stream = await self._dial(peer)
            except _DialFailed as exc:
                self._connection_failed(peer, str(exc))
                self._call(self._on_unreachable, peer.id)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            connected_at = trio.current_time()
            peer.active = True
            peer.active_since = connected_at
            log.info("peer became active", local_member_id=_hex(self.member_id), peer_id=_hex(peer.id))
            reason = "connection closed by remote peer"
            with trio.CancelScope() as connection_scope:
                peer.connection_scope = connection_scope
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._watch_for_close, peer, stream, nursery.cancel_scope)
                        await self._write_queue(peer, stream)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    reason = repr(exc)
                finally:
                    peer.connection_scope = None
                    await trio.aclose_forcefully(stream)
            if connection_scope.cancelled_caught:  # update_peer: new URLs, connect to them at once
                continue
            self._connection_failed(peer, reason)
            self._call(self._on_unreachable, peer.id)
            # A connection that lasted resets the backoff; one refused at once (say, by a member of another
            # cluster) keeps doubling it, so a refusing peer is not redialled in a tight loop.
            if trio.current_time() - connected_at >= self._backoff_max:
                backoff = self._backoff_min
            await trio.sleep(backoff)
            backoff = min(backoff * 2, self._backoff_max)

    async def _watch_for_close(self, peer: _Peer, stream: trio.abc.Stream, scope: trio.CancelScope) -> None:
        """Ends the connection when the receiver closes it; the receiver writes on a message stream only to
        say why it refuses it, which is logged once per peer and reason."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError, CodecError):
            frame = await read_one_frame(stream, self._max_frame)
            if frame is not None and frame.WhichOneof("body") == "refused":
                if frame.refused == REMOVED_REFUSAL and self._on_removed is not None:
                    self._call(self._on_removed)
                self._log_once(
                    f"to {peer.id}",
                    "request sent was ignored by remote peer",
                    local_member_id=_hex(self.member_id),
                    remote_peer_id=_hex(peer.id),
                    reason=frame.refused,
                )
        scope.cancel()

    async def _write_queue(self, peer: _Peer, stream: trio.abc.Stream) -> None:
        """Writes queued messages, in batches, until the queue is closed (the peer removed)."""
        receive = peer.receive_channel
        while True:
            try:
                first = await receive.receive()
            except trio.EndOfChannel:
                return
            batch = [self._frame(first)]
            size = len(batch[0])
            while len(batch) < BATCH_MESSAGES and size < BATCH_BYTES:
                try:
                    m = receive.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(self._frame(m))
                size += len(batch[-1])
            data = b"".join(batch)
            await stream.send_all(data)
            peer.sent_bytes += len(data)

    def _frame(self, m: Message) -> bytes:
        if m.snapshot is None:  # all but a MsgSnap, whose data follows it as a stream
            return encode_message_frame(self.cluster_id, self.member_id, m.to, m)
        return encode_frame(
            raft_pb2.PeerFrame(
                cluster_id=self.cluster_id, sender=self.member_id, receiver=m.to, message=message_to_pb(m)
            )
        )

    def _connection_failed(self, peer: _Peer, reason: str) -> None:
        """The connection to ``peer`` failed: drops its queue (see the module docstring)."""
        while True:
            try:
                peer.receive_channel.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        if peer.active:
            peer.active = False
            peer.disconnects += 1
            log.warning(
                "peer became inactive (message send to peer failed)",
                local_member_id=_hex(self.member_id),
                peer_id=_hex(peer.id),
                error=reason,
            )

    async def _dial(self, peer: _Peer) -> trio.abc.Stream:
        """A connection to the first of the peer's URLs (from the last good one on) that answers."""
        errors = []
        for _ in range(len(peer.urls)):
            url = peer.urls[peer.next_url % len(peer.urls)]
            try:
                with trio.fail_after(self._dial_timeout):
                    return await self._open(url)
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError) as exc:
                errors.append(f"{url}: {exc!r}")
                peer.next_url = (peer.next_url + 1) % len(peer.urls)
        raise _DialFailed("; ".join(errors) or "no peer URLs")

    async def _open(self, url: str) -> trio.abc.Stream:
        return await open_peer_stream(url, self._client_tls)

    # -- snapshots, sending ------------------------------------------------------------------

    def _start_snapshot(self, peer: _Peer, m: Message) -> None:
        if peer.snapshot_scope is not None or self._nursery is None:
            log.warning(
                "dropped internal Raft message since sending buffer is full (overloaded network)",
                message_type=m.type.value,
                local_member_id=_hex(self.member_id),
                remote_peer_id=_hex(peer.id),
                remote_peer_active=peer.active,
            )
            self._call(self._on_snapshot_status, peer.id, True)
            return
        peer.snapshot_scope = trio.CancelScope()
        self._nursery.start_soon(self._send_snapshot, peer, m)

    async def _send_snapshot(self, peer: _Peer, m: Message) -> None:
        """Streams a MsgSnap to ``peer`` on a connection of its own and reports the outcome."""
        size = len(m.snapshot.data) if m.snapshot is not None else 0
        fields = dict(local_member_id=_hex(self.member_id), remote_peer_id=_hex(peer.id), size=size)
        log.info("sending database snapshot", snapshot_index=m.snapshot.index if m.snapshot else 0, **fields)
        failed = True
        try:
            with peer.snapshot_scope, trio.fail_after(30 + size / (1024 * 1024)):  # generous: LANs move far more
                sent = await self._stream_snapshot(peer, m)
                log.info("sent database snapshot", chunks=sent, **fields)
                failed = False
        except (_DialFailed, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.warning("failed to send database snapshot", error=repr(exc), **fields)
        except CodecError as exc:
            log.warning("failed to send database snapshot", error=str(exc), **fields)
        finally:
            peer.snapshot_scope = None
            self._call(self._on_snapshot_status, peer.id, failed)

    async def _stream_snapshot(self, peer: _Peer, m: Message) -> int:
        """The message without its data, the data's header and chunks, then the receiver's acknowledgement;
        returns the chunks sent. CodecError if the receiver closes without acknowledging."""
        data = m.snapshot.data if m.snapshot is not None else b""
        head = replace(m, snapshot=replace(m.snapshot, data=b"")) if m.snapshot is not None else m
        stream = await self._dial(peer)
        try:
            header = raft_pb2.SnapshotHeader(size=len(data), chunk_size=self._chunk_size)
            await stream.send_all(self._frame(head) + self._envelope(peer.id, snapshot_header=header))
            sent = 0
            for chunk in chunks(data, self._chunk_size):
                await stream.send_all(self._envelope(peer.id, snapshot_chunk=chunk))
                sent += 1
            reply = await read_one_frame(stream, self._max_frame)
        finally:
            await trio.aclose_forcefully(stream)
        if reply is not None and reply.WhichOneof("body") == "refused":
            raise CodecError(f"refused by the receiver: {reply.refused}")
        if reply is None or not reply.snapshot_received:
            raise CodecError("the receiver closed the connection without acknowledging the snapshot")
        return sent

    def _envelope(self, receiver: int, **body) -> bytes:
        frame = raft_pb2.PeerFrame(cluster_id=self.cluster_id, sender=self.member_id, receiver=receiver, **body)
        return encode_frame(frame)

    # -- receiving ----------------------------------------------------------------------------

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """Serves one inbound peer connection until it closes or sends something refused; closes it."""
        remote = remote_address(getattr(stream, "transport_stream", stream))
        remote_host = remote.rsplit(":", 1)[0]
        reader = FrameReader(self._max_frame)
        receiving = _InboundSnapshot()
        try:
            while True:
                data = await stream.receive_some(RECEIVE_BYTES)
                if not data:
                    return
                for payload in reader.feed(data):
                    # A plain message (nearly every frame) is decoded without protobuf's objects; not while a
                    # snapshot streams, when only its frames may come (_take refuses the rest).
                    fast = decode_message_frame(payload) if receiving.message is None else None
                    if fast is not None:
                        cluster_id, sender, receiver, m = fast
                        self.received_bytes[sender] += len(payload)
                        self._check_envelope(cluster_id, sender, receiver)
                        self._take_message(m, sender, receiver, receiving)
                        continue
                    frame = decode_frame(payload)
                    self.received_bytes[frame.sender] += len(payload)
                    if frame.WhichOneof("body") == "members_request" and self._members_answer is not None:
                        await stream.send_all(encode_frame(raft_pb2.PeerFrame(members=self._members_answer())))
                        return
                    self._check_envelope(frame.cluster_id, frame.sender, frame.receiver)
                    await self._take(frame, receiving, stream)
        except _Refused as refused:
            self._log_once(refused.key, refused.reason, remote=remote, **refused.fields)
            with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(self._envelope(refused.sender, refused=refused.reason))
        except (CodecError, SnapshotStreamError) as exc:
            self._log_once(remote_host, "failed to decode Raft message", remote=remote, error=str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    def _check_envelope(self, cluster_id: int, sender: int, receiver: int) -> None:
        """Raises _Refused for a frame of another cluster, from a removed member or for another member."""
        if cluster_id != self.cluster_id:
            raise _Refused(
                "request cluster ID mismatch",
                sender,
                f"cluster {cluster_id:x}",
                local_member_id=_hex(self.member_id),
                local_member_cluster_id=_hex(self.cluster_id),
                remote_peer_id=_hex(sender),
                remote_peer_cluster_id=_hex(cluster_id),
            )
        if sender in self._removed:
            raise _Refused(
                REMOVED_REFUSAL,
                sender,
                f"member {_hex(sender)}",
                local_member_id=_hex(self.member_id),
                remote_peer_id=_hex(sender),
            )
        if receiver != self.member_id:
            raise _Refused(
                "rejected stream from remote peer because it was sent to another member",
                sender,
                f"member {_hex(sender)}",
                local_member_id=_hex(self.member_id),
                remote_peer_id=_hex(sender),
                remote_peer_target_id=_hex(receiver),
            )

    async def _take(self, frame: raft_pb2.PeerFrame, receiving: _InboundSnapshot, stream: trio.abc.Stream) -> None:
        body = frame.WhichOneof("body")
        if body == "call" and receiving.message is None:
            await self._answer_call(frame, stream)
            return
        if receiving.message is not None:  # a MsgSnap came: its header, then its chunks, must follow
            if receiving.assembler is None and body == "snapshot_header":
                receiving.assembler = SnapshotAssembler(frame.snapshot_header.size, frame.snapshot_header.chunk_size)
            elif receiving.assembler is not None and body == "snapshot_chunk":
                receiving.assembler.add(frame.snapshot_chunk)
                if receiving.assembler.done:
                    await self._deliver_snapshot(receiving, stream)
            else:
                raise CodecError(f"unexpected {body} frame in a snapshot stream")
            return
        if body != "message":
            raise CodecError(f"unexpected {body} frame")
        self._take_message(message_from_pb(frame.message), frame.sender, frame.receiver, receiving)

    def _take_message(self, m: Message, sender: int, receiver: int, receiving: _InboundSnapshot) -> None:
        """A Message frame from ``sender`` to ``receiver`` (its envelope), outside a snapshot stream."""
        if m.type in LOCAL_MESSAGES:
            raise CodecError(f"local message type {m.type.value} from the network")
        if m.sender != sender or m.to != receiver:
            raise CodecError("message ids differ from its envelope's")
        if m.type is MessageType.SNAP:
            if m.snapshot is None:
                raise CodecError("snapshot message without a snapshot")
            receiving.message = m
            log.info(
                "receiving database snapshot",
                local_member_id=_hex(self.member_id),
                remote_snapshot_sender_id=_hex(m.sender),
                incoming_snapshot_index=m.snapshot.index,
            )
            return
        self._deliver(m)

    async def _deliver_snapshot(self, receiving: _InboundSnapshot, stream: trio.abc.Stream) -> None:
        m, assembler = receiving.message, receiving.assembler
        receiving.message = receiving.assembler = None
        data = assembler.result()
        m.snapshot = replace(m.snapshot, data=data)
        log.info(
            "received and saved database snapshot",
            local_member_id=_hex(self.member_id),
            remote_snapshot_sender_id=_hex(m.sender),
            incoming_snapshot_index=m.snapshot.index,
            size=len(data),
            chunks=assembler.chunks_received,
        )
        self._deliver(m)
        await stream.send_all(self._envelope(m.sender, snapshot_received=True))

    # -- calls ----------------------------------------------------------------------------------

    async def call(self, peer_id: int, method: str, request: bytes, timeout: float) -> bytes:
        """Asks ``peer_id`` to run ``method`` on ``request`` (see the module docstring); returns its response
        bytes. Raises the EtcdError the peer answered with, or PeerCallFailed if no answer came within
        ``timeout`` seconds (unknown peer, no connection, closed without a reply).

        Connections are kept for the next call (up to IDLE_CALL_CONNECTIONS per peer), as etcd's peer HTTP
        client keeps its connections: a follower forwarding keep-alives does not open one per renewal. A kept
        connection that turns out closed is replaced by a new one, once (every call here may run twice)."""
        peer = self._peers.get(peer_id)
        if peer is None:
            raise PeerCallFailed(f"unknown peer {peer_id:x}")
        frame = self._envelope(peer_id, call=raft_pb2.PeerCall(method=method, request=request))
        idle = self._idle_calls.setdefault(peer_id, [])
        try:
            with trio.fail_after(timeout):
                while True:
                    reused = bool(idle)
                    stream = idle.pop() if reused else await self._dial(peer)
                    try:
                        await stream.send_all(frame)
                        reply = await read_one_frame(stream, self._max_frame)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, CodecError):
                        await trio.aclose_forcefully(stream)
                        if not reused:
                            raise
                        continue
                    except BaseException:  # the timeout, or the caller cancelled
                        await trio.aclose_forcefully(stream)
                        raise
                    if reply is None and reused:
                        await trio.aclose_forcefully(stream)
                        continue
                    break
        except (_DialFailed, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise PeerCallFailed(f"{method} to {peer_id:x}: {exc!r}") from None
        except CodecError as exc:
            raise PeerCallFailed(f"{method} to {peer_id:x}: {exc}") from None
        body = None if reply is None else reply.WhichOneof("body")
        if body == "reply" and len(idle) < IDLE_CALL_CONNECTIONS and peer_id in self._peers:
            idle.append(stream)
        else:
            await trio.aclose_forcefully(stream)
        if body == "refused":
            raise PeerCallFailed(f"{method} to {peer_id:x}: refused: {reply.refused}")
        if body != "reply":
            raise PeerCallFailed(f"{method} to {peer_id:x}: closed without a reply")
        if reply.reply.code:
            code = reply.reply.code
            raise EtcdError(StatusCode(code) if code in iter(StatusCode) else StatusCode.UNKNOWN, reply.reply.error)
        return reply.reply.response

    async def _answer_call(self, frame: raft_pb2.PeerFrame, stream: trio.abc.Stream) -> None:
        """Runs a PeerCall through ``on_call`` and writes its PeerReply (an error for a member that serves none)."""
        answer = raft_pb2.PeerReply()
        try:
            if self._on_call is None:
                raise EtcdError(StatusCode.UNIMPLEMENTED, f"peer call {frame.call.method!r} is not served")
            answer.response = await self._on_call(frame.call.method, frame.call.request)
        except EtcdError as exc:
            answer.code, answer.error = int(exc.code), exc.message
        except Exception as exc:  # nothing a peer sends ends the transport: the call fails, the member goes on
            log.exception("peer call failed", method=frame.call.method, remote_peer_id=_hex(frame.sender))
            answer.code, answer.error = int(StatusCode.INTERNAL), f"peer call {frame.call.method!r} failed: {exc!r}"
        await stream.send_all(self._envelope(frame.sender, reply=answer))

    def _deliver(self, m: Message) -> None:
        self._call(self._on_message, m)

    def _log_once(self, key: str, message: str, **fields) -> None:
        """Logs ``message`` (a warning) unless it was logged for ``key`` already."""
        if (key, message) in self._logged_refusals:
            return
        if len(self._logged_refusals) >= MAX_LOGGED_REFUSALS:
            self._logged_refusals.clear()
        self._logged_refusals.add((key, message))
        log.warning(message, **fields)

    @staticmethod
    def _call(callback: Callable, *args) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("peer transport callback failed", callback=getattr(callback, "__name__", repr(callback)))


@dataclass
class _InboundSnapshot:
    """A MsgSnap whose data is arriving on this connection."""

    message: Message | None = None
    assembler: SnapshotAssembler | None = None


class PeerCallFailed(Exception):
    """A call got no answer from its peer (the peer's own refusal of the request comes as its EtcdError)."""


class _DialFailed(Exception):
    """None of a peer's URLs could be connected to."""


async def open_peer_stream(url: str, client_tls: ssl.SSLContext | None) -> trio.abc.Stream:
    """A connection to a peer URL (http, https, unix, unixs); TLS with ``client_tls`` for https and unixs."""
    parts = urlsplit(url)
    if parts.scheme in ("unix", "unixs"):
        stream: trio.abc.Stream = await trio.open_unix_socket(parts.netloc + parts.path)
    elif parts.scheme in ("http", "https"):
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"peer URL {url!r} has no host:port")
        stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    else:
        raise ValueError(f"peer URL {url!r}: unsupported scheme")
    if parts.scheme in ("https", "unixs"):
        context = client_tls or ssl.create_default_context()
        tls = trio.SSLStream(stream, context, server_hostname=parts.hostname, https_compatible=False)
        try:
            await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return tls
    return stream


async def read_one_frame(stream: trio.abc.Stream, max_frame: int) -> raft_pb2.PeerFrame | None:
    """The next frame on ``stream``; None if it closes first."""
    reader = FrameReader(max_frame)
    while True:
        data = await stream.receive_some(RECEIVE_BYTES)
        if not data:
            return None
        frames = reader.feed(data)
        if frames:
            return decode_frame(frames[0])
