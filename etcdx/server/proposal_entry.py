"""The log entry of a client's Put, DeleteRange or Txn, built around the request bytes the client sent (pure).

The plain way to propose a request parses it, copies the parsed request into an InternalRequest, stamps the id
and the caller, and encodes the whole again: about 4 us a write. ``embedded`` writes the stamp fields and then
the request field holding the client's bytes as they came (etcdx/_native/proposal_py.py has the layout).
Parsing either entry gives the same InternalRequest: protobuf parses an embedded message from its own bytes,
exactly as the API layer parsed the request, unknown fields included (the plain way's copy keeps those too).

The two entries may differ in size, which --max-request-bytes limits, and the limit must decide as it does for
the plain entry. A parsed message encodes again to at most twice the bytes it was parsed from: a field grows
only when it is a negative enum or int32 sent as a 5-byte varint (written back as 10 bytes), and an embedded
message's length prefix grows by one byte at most when its content doubles. So when the stamp, the keys, the
longest id and length, and twice the request fit under the limit, both entries fit and the limit admits either;
otherwise ``embedded`` returns None and the caller proposes the plain way, whose size the limit then judges.
"""

from __future__ import annotations

from etcdx._native import load
from etcdx.auth.tokens import AuthInfo
from etcdx.pb.etcdxpb.internal_pb2 import AuthHeader, InternalRequest

proposal = load("proposal")

# The InternalRequest fields a client's write is proposed in, and each one's key (length-delimited).
FIELD_KEYS = {
    name: InternalRequest.DESCRIPTOR.fields_by_name[name].number << 3 | 2 for name in ("put", "delete_range", "txn")
}
_ROOM = 1 + 10 + 1 + 10  # the id's key and its longest varint, the request's key and its longest length
_ANONYMOUS_STAMP = InternalRequest(auth=AuthHeader()).SerializeToString()


def auth_stamp(info: AuthInfo | None) -> bytes:
    """The encoded auth field of a proposal made as ``info``, as EtcdServer stamps an InternalRequest: none for
    the member's own (None), an empty header for a call without a user."""
    if info is None:
        return b""
    if not info.username and not info.revision:
        return _ANONYMOUS_STAMP
    return InternalRequest(auth=AuthHeader(username=info.username, revision=info.revision)).SerializeToString()


def embedded(request_id: int, stamp: bytes, field: str, message: bytes, max_request_bytes: int) -> bytes | None:
    """The entry proposing InternalRequest(id=request_id, <stamp>, <field>=message parsed), with ``message``
    embedded as it is; None when the limit could judge it otherwise than the plain entry (module doc)."""
    if len(stamp) + _ROOM + 2 * len(message) > max_request_bytes:
        return None
    return proposal.embed(request_id, stamp, FIELD_KEYS[field], message)
