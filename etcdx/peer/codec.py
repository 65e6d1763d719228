"""Raft messages <-> peer frames: pure, no I/O.

A frame on a peer connection is a 4-byte big-endian length, then a serialized ``etcdxpb.PeerFrame``: the
envelope (cluster id, sender id, receiver id) around one body (a Message, or a piece of a snapshot's data
stream). Contracts:
- ``message_from_pb(message_to_pb(m)) == m`` for every etcdx.raft.Message (every MessageType and field).
- Decoding never trusts the bytes: anything that does not parse, or parses into values the core cannot
  hold (an unknown message or entry type, a member both voter and learner), raises ``CodecError``.
- ``FrameReader`` refuses a length over its maximum before reading the frame, so a hostile prefix costs
  nothing.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from etcdx._native import load
from etcdx.pb.etcdxpb import raft_pb2
from etcdx.raft.messages import ConfState, Entry, EntryType, Message, MessageType, Snapshot

LENGTH_BYTES = 4
DEFAULT_MAX_FRAME = 64 * 1024 * 1024
"""Bigger than any message the core makes (appends are capped near 1 MiB plus one entry, and an entry
is capped by --max-request-bytes), far below what a hostile length prefix could ask for."""


class CodecError(ValueError):
    """Bytes that are not a well-formed peer frame."""


_fast = load("peerframe")
encode_message_frame = _fast.encode_message_frame
"""(cluster_id, sender, receiver, m) -> the framed Message, the bytes ``message_frame`` gives, for a message without
a snapshot (etcdx/_native/peerframe_py.py)."""
decode_message_frame = _fast.decode_message_frame
"""payload -> (cluster_id, sender, receiver, Message) for a frame holding a Message without a snapshot, as
``encode_message_frame`` writes it; None for any other payload, which ``decode_frame`` then decodes (and
refuses if malformed). What it returns is what decode_frame and message_from_pb give (peerframe_py.py)."""


_TO_PB = {t: i for i, t in enumerate(MessageType)}
_FROM_PB = {i: t for t, i in _TO_PB.items()}
assert len(_TO_PB) == len(raft_pb2.MessageType.values()), "raft.proto's MessageType must list every type"


def message_to_pb(m: Message) -> raft_pb2.Message:
    pb = raft_pb2.Message(
        type=_TO_PB[m.type],
        to=m.to,
        sender=m.sender,
        term=m.term,
        log_term=m.log_term,
        index=m.index,
        commit=m.commit,
        reject=m.reject,
        reject_hint=m.reject_hint,
        context=m.context,
    )
    if m.entries:
        pb.entries.extend(raft_pb2.Entry(term=e.term, index=e.index, type=e.type, data=e.data) for e in m.entries)
    if m.snapshot is not None:
        pb.has_snapshot = True
        pb.snapshot.CopyFrom(snapshot_to_pb(m.snapshot))
    return pb


def snapshot_to_pb(s: Snapshot, *, with_data: bool = True) -> raft_pb2.Snapshot:
    return raft_pb2.Snapshot(
        index=s.index,
        term=s.term,
        conf_state=raft_pb2.ConfState(voters=sorted(s.conf_state.voters), learners=sorted(s.conf_state.learners)),
        data=s.data if with_data else b"",
    )


def message_from_pb(pb: raft_pb2.Message) -> Message:
    """The Message ``pb`` carries; CodecError if it holds a value the core has no meaning for."""
    kind = _FROM_PB.get(pb.type)
    if kind is None:
        raise CodecError(f"unknown message type {pb.type}")
    entries = []
    for e in pb.entries:
        if e.type not in (EntryType.NORMAL, EntryType.CONF_CHANGE):
            raise CodecError(f"unknown entry type {e.type}")
        entries.append(Entry(e.term, e.index, EntryType(e.type), e.data))
    return Message(
        type=kind,
        to=pb.to,
        sender=pb.sender,
        term=pb.term,
        log_term=pb.log_term,
        index=pb.index,
        entries=tuple(entries),
        commit=pb.commit,
        snapshot=snapshot_from_pb(pb.snapshot) if pb.has_snapshot else None,
        reject=pb.reject,
        reject_hint=pb.reject_hint,
        context=pb.context,
    )


def snapshot_from_pb(pb: raft_pb2.Snapshot, data: bytes | None = None) -> Snapshot:
    try:
        conf = ConfState(frozenset(pb.conf_state.voters), frozenset(pb.conf_state.learners))
    except ValueError as exc:
        raise CodecError(str(exc)) from None
    return Snapshot(index=pb.index, term=pb.term, conf_state=conf, data=pb.data if data is None else data)


def encode_frame(frame: raft_pb2.PeerFrame) -> bytes:
    payload = frame.SerializeToString()
    return len(payload).to_bytes(LENGTH_BYTES, "big") + payload


def message_frame(cluster_id: int, sender: int, receiver: int, m: Message) -> bytes:
    """One framed Message (a snapshot's data, if any, travels inside it: see snapshot_stream for streaming)."""
    return encode_frame(
        raft_pb2.PeerFrame(cluster_id=cluster_id, sender=sender, receiver=receiver, message=message_to_pb(m))
    )


def decode_frame(payload: bytes) -> raft_pb2.PeerFrame:
    """The PeerFrame in ``payload`` (one frame without its length); CodecError if it does not parse or has
    no body."""
    frame = raft_pb2.PeerFrame()
    try:
        frame.ParseFromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise CodecError(f"cannot parse peer frame: {exc}") from None
    if frame.WhichOneof("body") is None:
        raise CodecError("peer frame has no body")
    return frame


class FrameReader:
    """Splits a byte stream into frame payloads. ``feed`` returns the complete payloads so far (in order)
    and keeps any partial tail; a length over ``max_frame`` raises CodecError (the stream is then unusable)."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        start = 0
        buf = self._buffer
        while len(buf) - start >= LENGTH_BYTES:
            length = int.from_bytes(buf[start : start + LENGTH_BYTES], "big")
            if length > self.max_frame:
                raise CodecError(f"frame of {length} bytes exceeds the maximum of {self.max_frame}")
            end = start + LENGTH_BYTES + length
            if len(buf) < end:
                break
            frames.append(bytes(buf[start + LENGTH_BYTES : end]))
            start = end
        if start:
            del buf[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete."""
        return len(self._buffer)
