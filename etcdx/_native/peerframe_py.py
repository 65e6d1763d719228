"""Peer frames that carry one Raft message, without protobuf's objects (the pure-Python twin of _peerframe.pyx).

A peer frame is a 4-byte big-endian length, then a serialized etcdxpb.PeerFrame (etcdx/peer/codec.py). Nearly
every frame a member sends is a Message without a snapshot (appends, heartbeats, their answers, votes, read
indexes); this module writes and reads those, and codec.py's protobuf path does the rest.

``encode_message_frame(cluster_id, sender, receiver, m)``: the whole frame, length first, byte for byte what
protobuf gives for ``PeerFrame(cluster_id, sender, receiver, message=message_to_pb(m))``: fields in number
order, each omitted when it holds its default (0, False, empty). ``m.snapshot`` must be None. A number out of
its field's range raises OverflowError.

    PeerFrame  1 cluster_id 0x08, 2 sender 0x10, 3 receiver 0x18, 4 message 0x22 (length-delimited)
    Message    1 type 0x08 (MessageType's index in raft.proto), 2 to 0x10, 3 sender 0x18, 4 term 0x20,
               5 log_term 0x28, 6 index 0x30, 7 entries 0x3a (each an Entry, length-delimited), 8 commit 0x40,
               (9 has_snapshot, 10 snapshot: never written here), 11 reject 0x58, 12 reject_hint 0x60,
               13 context 0x6a
    Entry      as entrycodec_py.py writes it

``decode_message_frame(payload)``: ``(cluster_id, sender, receiver, message)`` when ``payload`` (a frame
without its length) holds a Message body written as encode_message_frame writes it: each field at most once
and in number order (the entries in one run), with its own wire type, no unknown field, no snapshot, a known
message and entry type, bools of 0 or 1, keys and lengths of at most 5 bytes. None for anything else: the
caller then decodes the frame with protobuf (codec.decode_frame, message_from_pb), which also refuses what is
malformed. So whatever this returns is exactly what that path gives for the same bytes
(tests/unit/test_peerframe_twins.py).
"""

from __future__ import annotations

from etcdx._native.entrycodec_py import encode as encode_entry
from etcdx._native.protowire import LEN, VARINT, WireError, check_range, read_key, read_varint, varint
from etcdx.raft.messages import Entry, EntryType, Message, MessageType

U64_MAX = (1 << 64) - 1
MAX_KEY_BYTES = 5  # a field key or a length takes at most 5 bytes as upb reads them (32 bits); longer: not read
TYPES = tuple(MessageType)  # raft.proto's MessageType numbers are the enum's order
TYPE_NUMBERS = {t: n for n, t in enumerate(TYPES)}
ENTRY_TYPES = (EntryType.NORMAL, EntryType.CONF_CHANGE)


def encode_message_frame(cluster_id: int, sender: int, receiver: int, m: Message) -> bytes:
    assert m.snapshot is None
    message = b"".join(_message_fields(m))
    frame = b"".join(
        (
            _uint(0x08, cluster_id, "cluster_id"),
            _uint(0x10, sender, "sender"),
            _uint(0x18, receiver, "receiver"),
            b"\x22",
            varint(len(message)),
            message,
        )
    )
    return len(frame).to_bytes(4, "big") + frame


def _message_fields(m: Message) -> list[bytes]:
    fields = [
        _uint(0x08, TYPE_NUMBERS[m.type], "type"),
        _uint(0x10, m.to, "to"),
        _uint(0x18, m.sender, "sender"),
        _uint(0x20, m.term, "term"),
        _uint(0x28, m.log_term, "log_term"),
        _uint(0x30, m.index, "index"),
    ]
    for e in m.entries:
        entry = encode_entry(e.term, e.index, e.type, bytes(e.data))
        fields += (b"\x3a", varint(len(entry)), entry)
    fields += (
        _uint(0x40, m.commit, "commit"),
        b"\x58\x01" if m.reject else b"",
        _uint(0x60, m.reject_hint, "reject_hint"),
    )
    context = bytes(m.context)
    if context:
        fields += (b"\x6a", varint(len(context)), context)
    return fields


def _uint(key: int, value: int, what: str) -> bytes:
    """A uint64 field with its one-byte key, or nothing for 0."""
    check_range(value, 0, U64_MAX, what)
    return bytes((key,)) + varint(value) if value else b""


class _NotFast(Exception):
    """The bytes are not a frame this module reads: protobuf's path decodes them."""


def decode_message_frame(payload: bytes) -> tuple[int, int, int, Message] | None:
    try:
        return _decode_frame(bytes(payload))
    except (_NotFast, WireError):
        return None


def _fields(buf: bytes, start: int, end: int):
    """(number, wire type, value) for each field of buf[start:end], in order; the value is an int (varint) or
    the (start, end) of a length-delimited field. Raises _NotFast for other wire types, a key or length over
    MAX_KEY_BYTES, and a field that runs past ``end``."""
    pos = start
    while pos < end:
        key_start = pos
        number, wire_type, pos = read_key(buf, pos)
        if pos - key_start > MAX_KEY_BYTES:
            raise _NotFast
        if wire_type == VARINT:
            value, pos = _read_uint64(buf, pos)
        elif wire_type == LEN:
            length_start = pos
            length, pos = _read_uint64(buf, pos)
            if pos - length_start > MAX_KEY_BYTES or length > end - pos:
                raise _NotFast
            value = (pos, pos + length)
            pos += length
        else:
            raise _NotFast
        if pos > end:
            raise _NotFast
        yield number, wire_type, value


def _read_uint64(buf: bytes, pos: int) -> tuple[int, int]:
    """A varint that holds a uint64 exactly: _NotFast for one with bits past the 64th (a 10th byte over 1)."""
    value, after = read_varint(buf, pos)
    if after - pos == 10 and buf[after - 1] > 1:
        raise _NotFast
    return value, after


# (number, wire type) of each field read, in the order they must come.
_FRAME_FIELDS = {1: VARINT, 2: VARINT, 3: VARINT, 4: LEN}
_MESSAGE_FIELDS = {1: VARINT, 2: VARINT, 3: VARINT, 4: VARINT, 5: VARINT, 6: VARINT, 7: LEN, 8: VARINT}
_MESSAGE_FIELDS |= {11: VARINT, 12: VARINT, 13: LEN}
_ENTRY_FIELDS = {1: VARINT, 2: VARINT, 3: VARINT, 4: LEN}


def _read(buf: bytes, start: int, end: int, known: dict[int, int], repeated: int = 0) -> dict[int, object]:
    """The fields of buf[start:end] by number (the repeated one's values as a list); _NotFast unless each field
    is known, has its wire type, and comes after the one before (only ``repeated`` may come again, at once)."""
    values: dict[int, object] = {}
    last = 0
    for number, wire_type, value in _fields(buf, start, end):
        if known.get(number) != wire_type:
            raise _NotFast
        if number == repeated and last == repeated:
            values[number].append(value)
            continue
        if number <= last:
            raise _NotFast
        values[number] = [value] if number == repeated else value
        last = number
    return values


def _decode_frame(buf: bytes) -> tuple[int, int, int, Message]:
    frame = _read(buf, 0, len(buf), _FRAME_FIELDS)
    if 4 not in frame:
        raise _NotFast
    start, end = frame[4]
    fields = _read(buf, start, end, _MESSAGE_FIELDS, repeated=7)
    kind = fields.get(1, 0)
    if kind >= len(TYPES) or fields.get(11, 0) > 1:
        raise _NotFast
    entries = tuple(_entry(buf, *span) for span in fields.get(7, ()))
    context_start, context_end = fields.get(13, (0, 0))
    message = Message(
        type=TYPES[kind],
        to=fields.get(2, 0),
        sender=fields.get(3, 0),
        term=fields.get(4, 0),
        log_term=fields.get(5, 0),
        index=fields.get(6, 0),
        entries=entries,
        commit=fields.get(8, 0),
        snapshot=None,
        reject=bool(fields.get(11, 0)),
        reject_hint=fields.get(12, 0),
        context=buf[context_start:context_end],
    )
    return frame.get(1, 0), frame.get(2, 0), frame.get(3, 0), message


def _entry(buf: bytes, start: int, end: int) -> Entry:
    fields = _read(buf, start, end, _ENTRY_FIELDS)
    entry_type = fields.get(3, 0)
    if entry_type >= len(ENTRY_TYPES):
        raise _NotFast
    data_start, data_end = fields.get(4, (0, 0))
    return Entry(fields.get(1, 0), fields.get(2, 0), ENTRY_TYPES[entry_type], buf[data_start:data_end])
