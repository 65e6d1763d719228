"""The outline of a plain TxnRequest read from its wire bytes (the pure-Python twin of _txnscan.pyx).

``scan`` gives what etcdx.api.grpc.kv_checks._outline_flat gives for ``TxnRequest.FromString(data)``, as
(read_only, cost, error code), without building protobuf objects. It reads only a *plain* txn, the shape
clients send (Kubernetes' updates, most txns): these etcdserverpb messages (proto/etcdserverpb/rpc.proto),
each field of the wire type named (VARINT: a varint, an int64 or enum as its 64-bit two's complement, a
bool any non-zero value; LEN: length-delimited), in any order:

    TxnRequest          1 compare (Compare), 2 success (RequestOp), 3 failure (RequestOp): LEN, repeated;
                        each occurrence is one element, the three may be interleaved
    Compare             3 key, 7 value, 64 range_end: LEN; 1 result, 2 target, 4 version, 5 create_revision,
                        6 mod_revision, 8 lease: VARINT
    RequestOp           none, or one occurrence of one of 1 request_range (RangeRequest), 2 request_put
                        (PutRequest), 3 request_delete_range (DeleteRangeRequest): LEN
    RangeRequest        1 key, 2 range_end: LEN; 3 limit, 4 revision, 5 sort_order, 6 sort_target (0 to 4),
                        7 serializable, 8 keys_only, 9 count_only, 10 min_mod_revision, 11 max_mod_revision,
                        12 min_create_revision, 13 max_create_revision: VARINT
    PutRequest          1 key, 2 value: LEN; 3 lease, 4 prev_kv, 5 ignore_value, 6 ignore_lease: VARINT
    DeleteRangeRequest  1 key, 2 range_end: LEN; 3 prev_kv: VARINT

Field keys and lengths take at most 5 varint bytes (upb refuses longer ones, however small their value). A
field repeated inside one of the last four messages counts once, its last occurrence winning (as in protobuf).
Anything else makes ``scan`` return None, for the protobuf-based path to decide: malformed bytes, an unknown
field, a known field of another wire type, a RequestOp with a nested txn (field 4) or with more than one
request field occurrence (which protobuf would merge or let override), a sort_target outside 0..4.
"""

from __future__ import annotations

from collections.abc import Iterator

from etcdx._native.protowire import LEN, VARINT, WireError, read_key, read_varint

# Error codes: the first error of kv_checks._outline_flat, one per EtcdError it can raise for a plain txn.
OK = 0
ERR_TOO_MANY_OPS = 1
ERR_EMPTY_KEY = 2
ERR_VALUE_PROVIDED = 3
ERR_LEASE_PROVIDED = 4
ERR_KEY_NOT_FOUND = 5  # an op with no request set
ERR_DUPLICATE_KEY = 6

# RequestOp's request fields: an op's kind (0 for an op with none set).
RANGE, PUT, DELETE = 1, 2, 3
MAX_SORT_TARGET = 4  # RangeRequest.VALUE
MAX_SIZE_BYTES = 5  # the longest varint of a field key or length upb accepts (a value under 2**35)

# Each message's fields as {number: wire type}.
TXN_REQUEST = {1: LEN, 2: LEN, 3: LEN}
COMPARE = {1: VARINT, 2: VARINT, 3: LEN, 4: VARINT, 5: VARINT, 6: VARINT, 7: LEN, 8: VARINT, 64: LEN}
REQUEST_OP = {RANGE: LEN, PUT: LEN, DELETE: LEN}
REQUESTS = {
    RANGE: {1: LEN, 2: LEN, **dict.fromkeys(range(3, 14), VARINT)},
    PUT: {1: LEN, 2: LEN, 3: VARINT, 4: VARINT, 5: VARINT, 6: VARINT},
    DELETE: {1: LEN, 2: LEN, 3: VARINT},
}


def scan(data: bytes, max_txn_ops: int, kv_overhead: int) -> tuple[bool, int, int] | None:
    """(read_only, cost, error code) of the plain TxnRequest ``data``, None if it is not plain (see above).

    read_only: no op puts or deletes. cost: the costlier branch, the sum over its puts of ``kv_overhead`` plus
    the lengths of key and value (0 for a read-only txn). The error is the first in this order: more than
    ``max_txn_ops`` compares, success or failure ops; an empty compare key; each op's own check, success ops
    then failure ops (an empty key; a put's value or lease given with ignore_value or ignore_lease; an op with
    no request); a key put twice in a branch or put into a range that branch deletes.
    """
    try:
        fields = list(_fields(data, TXN_REQUEST))
        compare_keys = [_compare_key(value) for number, value in fields if number == 1]
        branches = [[_op(value) for number, value in fields if number == branch] for branch in (2, 3)]
    except WireError:
        return None
    read_only = not any(kind in (PUT, DELETE) for ops in branches for kind, _, _, _ in ops)
    cost = max(
        sum(kv_overhead + len(key) + len(other) for kind, key, other, _ in ops if kind == PUT) for ops in branches
    )
    errors = [error for ops in branches for _, _, _, error in ops if error != OK]
    if max(len(compare_keys), *map(len, branches)) > max_txn_ops:
        error = ERR_TOO_MANY_OPS
    elif not all(compare_keys):
        error = ERR_EMPTY_KEY
    elif errors:
        error = errors[0]
    elif any(map(_duplicate, branches)):
        error = ERR_DUPLICATE_KEY
    else:
        error = OK
    return read_only, cost, error


def _fields(message: bytes, layout: dict[int, int]) -> Iterator[tuple[int, int | bytes]]:
    """(number, value) of each field of ``message`` in order: a VARINT's value (0 <= value < 2**64), a LEN
    field's bytes. WireError for malformed bytes or a field whose number and wire type are not in ``layout``."""
    pos = 0
    while pos < len(message):
        start = pos
        number, wire_type, pos = read_key(message, pos)
        if layout.get(number) != wire_type or pos - start > MAX_SIZE_BYTES:
            raise WireError(f"unexpected field {number} of wire type {wire_type}, or its key over 5 bytes")
        start = pos
        value, pos = read_varint(message, pos)
        if wire_type == LEN:
            if pos - start > MAX_SIZE_BYTES or pos + value > len(message):
                raise WireError(f"malformed length of field {number}")
            value, pos = message[pos : pos + value], pos + value
        yield number, value


def _compare_key(message: bytes) -> bytes:
    """The key of the Compare ``message``."""
    return dict(_fields(message, COMPARE)).get(3, b"")


def _op(message: bytes) -> tuple[int, bytes, bytes, int]:
    """(kind, key, a put's value or a delete's range_end, error code of the op's own check) of the RequestOp
    ``message``; WireError if it is not plain."""
    fields = list(_fields(message, REQUEST_OP))
    if not fields:
        return 0, b"", b"", ERR_KEY_NOT_FOUND
    if len(fields) > 1:
        raise WireError("more than one request field in a RequestOp")
    kind, request = fields[0]
    values = dict(_fields(request, REQUESTS[kind]))  # the last occurrence of a field wins
    key = values.get(1, b"")
    if kind == RANGE:
        if values.get(6, 0) > MAX_SORT_TARGET:
            raise WireError("unknown sort target")
        return kind, key, b"", OK if key else ERR_EMPTY_KEY
    other = values.get(2, b"")
    if not key:
        error = ERR_EMPTY_KEY
    elif kind == PUT and values.get(5) and other:
        error = ERR_VALUE_PROVIDED
    elif kind == PUT and values.get(6) and values.get(3):
        error = ERR_LEASE_PROVIDED
    else:
        error = OK
    return kind, key, other, error


def _duplicate(ops: list[tuple[int, bytes, bytes, int]]) -> bool:
    """Whether a branch whose ops all passed their checks puts a key twice or into a range it deletes.

    kv_checks' interval test (a put key k is [k, k + b"\\0"); empty ends are +infinity) for non-empty keys
    and range ends, as here: a delete removes [key, range_end), none when range_end <= key, or its key alone
    ([key, key + b"\\0")) without range_end.
    """
    puts = [key for kind, key, _, _ in ops if kind == PUT]
    deletes = [(key, end or key + b"\0") for kind, key, end, _ in ops if kind == DELETE]
    return len(set(puts)) < len(puts) or any(begin <= key < end for key in puts for begin, end in deletes)
