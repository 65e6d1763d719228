"""A proposal's InternalRequest encoded around a client's request bytes (the pure-Python twin of _proposal.pyx).

etcdxpb.InternalRequest as ``embed`` writes it:

    field 1 id       uint64        varint, key 0x08, always (first: a proposer finds its id there even in an
                                   entry that does not parse as a whole)
    field 2 auth     AuthHeader    ``stamp`` as given: nothing, or the key 0x12, a length and the header
    field N request  a request     ``field_key`` (N << 3 | 2), the length, then ``message`` as given

Parsing the result gives the InternalRequest whose field N is ``message`` parsed: protobuf parses an embedded
message from its bytes alone. Nothing is parsed or checked here; see etcdx/server/proposal_entry.py for when
the bytes may be used.
"""

from __future__ import annotations

from etcdx._native.protowire import check_range, varint

U64_MAX = (1 << 64) - 1


def embed(request_id: int, stamp: bytes, field_key: int, message: bytes) -> bytes:
    """The InternalRequest bytes: id ``request_id``, then ``stamp``, then ``message`` under ``field_key``."""
    check_range(request_id, 0, U64_MAX, "request_id")
    check_range(field_key, 0, 0x7F, "field_key")  # a key of one byte: fields 1 to 15
    return b"".join((b"\x08", varint(request_id), stamp, bytes((field_key,)), varint(len(message)), message))
