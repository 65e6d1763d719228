"""The txn scanner, compiled and twin (each property example checks both): whenever it reads a TxnRequest's
bytes (returns non-None) its outline is kv_checks._outline_flat's of the parsed request, on protobuf's own
encodings of random requests and on non-canonical bytes (fields repeated, reordered or interleaved, padded
varints, unknown fields, two encodings concatenated); it reads the plain shapes clients send; and
kv_checks.outline_txn_bytes equals outline_txn.

The compiled module is imported directly: if it was not built, its tests fail instead of skipping.
"""

from __future__ import annotations

import importlib
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx import errors
from etcdx.api.grpc import kv_checks
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.server.quota import KV_OVERHEAD

IMPLEMENTATIONS = ["etcdx._native._txnscan", "etcdx._native.txnscan_py"]
compiled, twin = (importlib.import_module(name) for name in IMPLEMENTATIONS)
each_scanner = pytest.mark.parametrize("scanner", [compiled, twin], ids=["compiled", "twin"])

ERRORS = {
    twin.ERR_TOO_MANY_OPS: errors.ERR_TOO_MANY_OPS,
    twin.ERR_EMPTY_KEY: errors.ERR_EMPTY_KEY,
    twin.ERR_VALUE_PROVIDED: errors.ERR_VALUE_PROVIDED,
    twin.ERR_LEASE_PROVIDED: errors.ERR_LEASE_PROVIDED,
    twin.ERR_KEY_NOT_FOUND: errors.ERR_KEY_NOT_FOUND,
    twin.ERR_DUPLICATE_KEY: errors.ERR_DUPLICATE_KEY,
}


def flat_outline(data: bytes, max_txn_ops: int):
    """(read_only, cost, (error code, message) or None) by kv_checks._outline_flat of the parsed ``data``."""
    outline = kv_checks._outline_flat(pb.TxnRequest.FromString(data), max_txn_ops)
    assert outline is not None, "the scanner read a txn with a nested txn"
    return outline.read_only, outline.cost, outline.error and (outline.error.code, outline.error.message)


def scanned_outline(scanner, data: bytes, max_txn_ops: int):
    """``flat_outline``'s answer from the scanner, None where it does not read ``data``."""
    scanned = scanner.scan(data, max_txn_ops, KV_OVERHEAD)
    if scanned is None:
        return None
    read_only, cost, code = scanned
    assert type(read_only) is bool and type(cost) is int
    return read_only, cost, (ERRORS[code].code, ERRORS[code].message) if code else None


def check(data: bytes, max_txn_ops: int, plain: bool, scanners=(compiled, twin)) -> None:
    """Each scanner's outline of ``data`` is _outline_flat's wherever it gives one, and it gives one if ``plain``.
    (The property tests hold both scanners to each example: drawing the examples is what takes time.)"""
    expected = None
    for scanner in scanners:
        got = scanned_outline(scanner, data, max_txn_ops)
        assert got is not None or not plain, scanner.__name__
        if got is not None:
            expected = expected or flat_outline(data, max_txn_ops)
            assert got == expected, scanner.__name__


# -- protobuf's encodings of random requests ---------------------------------------------------------


def mostly(common: st.SearchStrategy, rare: st.SearchStrategy, one_in: int = 10) -> st.SearchStrategy:
    """Draws from ``rare`` about one time in ``one_in``, else from ``common`` (to keep errors and fallbacks rare
    enough that most examples reach the later checks)."""
    return st.integers(1, one_in).flatmap(lambda n: rare if n == one_in else common)


# A few short keys, to put one key twice and into deleted ranges often; an empty one now and then. (Each draw
# costs: one per key, flag or padding keeps the examples quick to make.)
KEYS = [b"a", b"a\0", b"ab", b"b", b"c", b"\0", b"\x01\xff"]
keys = st.sampled_from([*KEYS * 3, b""])
ends = st.sampled_from([b"", b"\0", b"a", b"ab", b"b", b"c", b"d", b"\xff"])
i64 = st.one_of(st.integers(-2, 3), st.integers(-(1 << 63), (1 << 63) - 1))
i32 = st.one_of(st.integers(-1, 6), st.integers(-(1 << 31), (1 << 31) - 1))
rarely = st.sampled_from([False] * 9 + [True])
SORT_TARGETS = range(5)

puts = st.builds(
    pb.PutRequest,
    key=keys,
    value=st.binary(max_size=40),
    lease=i64,
    prev_kv=st.booleans(),
    ignore_value=rarely,
    ignore_lease=rarely,
)
ranges = st.builds(
    pb.RangeRequest,
    key=keys,
    range_end=ends,
    limit=i64,
    sort_order=i32,
    sort_target=mostly(st.sampled_from(SORT_TARGETS), i32),
    keys_only=st.booleans(),
)
deletes = st.builds(pb.DeleteRangeRequest, key=keys, range_end=ends, prev_kv=st.booleans())
compare_targets = st.one_of(
    st.just({}),
    *(st.builds(lambda v, name=name: {name: v}, i64) for name in ("version", "create_revision", "mod_revision")),
    st.builds(lambda v: {"value": v}, st.binary(max_size=5)),
)
compares = st.builds(
    lambda key, range_end, result, target, union: pb.Compare(
        key=key, range_end=range_end, result=result, target=target, **union
    ),
    keys,
    ends,
    i32,
    i32,
    compare_targets,
)
flat_ops = mostly(
    st.one_of(
        puts.map(lambda r: pb.RequestOp(request_put=r)),
        ranges.map(lambda r: pb.RequestOp(request_range=r)),
        deletes.map(lambda r: pb.RequestOp(request_delete_range=r)),
    ),
    st.just(pb.RequestOp()),
    20,
)


def txns_of(ops: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(
        pb.TxnRequest,
        compare=st.lists(compares, max_size=4),
        success=st.lists(ops, max_size=4),
        failure=st.lists(ops, max_size=4),
    )


# Most of them flat; the others may have a (flat) txn nested in an op.
flat_txns = txns_of(flat_ops)
txns = mostly(flat_txns, txns_of(st.one_of(flat_ops, flat_txns.map(lambda txn: pb.RequestOp(request_txn=txn)))), 4)
max_ops = mostly(st.just(128), st.integers(0, 4), 3)


def is_plain(txn: pb.TxnRequest) -> bool:
    """No nested txn and no unknown sort target: the shapes the scanner must read."""
    ops = [*txn.success, *txn.failure]
    return not any(op.HasField("request_txn") for op in ops) and all(
        op.request_range.sort_target in SORT_TARGETS for op in ops
    )


@settings(max_examples=300)
@given(txn=txns, max_txn_ops=max_ops)
def test_encoded_requests(txn, max_txn_ops):
    check(txn.SerializeToString(), max_txn_ops, is_plain(txn))


@settings(max_examples=100)
@given(first=txns, second=txns, max_txn_ops=max_ops)
def test_two_encodings_concatenated(first, second, max_txn_ops):
    """Protobuf merges them: each repeated field's elements, the first request's then the second's."""
    data = first.SerializeToString() + second.SerializeToString()
    check(data, max_txn_ops, is_plain(first) and is_plain(second))


# -- non-canonical bytes, written field by field ------------------------------------------------------

U64 = (1 << 64) - 1


def varint(value: int, padding: int = 0) -> bytes:
    """``value`` (a negative one as its 64-bit two's complement) in base 128 with up to ``padding`` extra zero
    groups (protobuf reads them: up to 10 bytes for a value, 5 for a field key or length)."""
    value &= U64
    groups = [value & 0x7F]
    while value >> 7:
        value >>= 7
        groups.append(value & 0x7F)
    groups += [0] * min(padding, 10 - len(groups))
    return bytes(group | 0x80 for group in groups[:-1]) + bytes(groups[-1:])


@st.composite
def field(draw, number: int, values: st.SearchStrategy) -> bytes:
    """Field ``number``: a varint for an int value, length-delimited for bytes. Its varints are sometimes padded,
    now and then past the 5 bytes protobuf reads for a field key or length."""
    value = draw(values)
    if isinstance(value, bytes):
        key = varint(number << 3 | 2, draw(SIZE_PADDINGS))
        return key + varint(len(value), draw(SIZE_PADDINGS)) + value
    return varint(number << 3) + varint(value, draw(PADDINGS))


# Extra varint groups: up to 9 in a value; in a field key or length mostly up to 4, now and then 9 (too many).
PADDINGS = st.sampled_from([0] * 6 + [1, 4, 9])
SIZE_PADDINGS = st.sampled_from([0] * 260 + [1, 4] * 20 + [9])


raw_ints = st.one_of(st.integers(0, 3), st.integers(-(1 << 63), U64), st.sampled_from([1 << 32, 1 << 63, U64]))
raw_bools = mostly(st.just(0), st.sampled_from([1, 2, 1 << 32, U64]), 4)
sort_targets = mostly(st.sampled_from(SORT_TARGETS), st.sampled_from([5, 1 << 32, (1 << 32) + 2, U64]))
odd_fields = st.one_of(
    field(15, raw_ints),  # unknown
    field(99, st.binary(max_size=3)),  # unknown
    st.just(varint(20 << 3 | 5) + b"\0\0\0\0"),  # unknown fixed32
    st.just(varint(21 << 3 | 1) + b"\1" * 8),  # unknown fixed64
    st.just(varint(22 << 3 | 3) + varint(1 << 3) + b"\1" + varint(22 << 3 | 4)),  # unknown group
    field(1, raw_ints),  # a known field of another wire type
    field(2, raw_ints),
    field(3, raw_ints),
    field(6, st.binary(max_size=2)),
    st.just(b"\x80"),  # a truncated varint
    st.just(b"\x0a\x05ab"),  # a truncated field
)


@st.composite
def message(draw, fields: st.SearchStrategy, key: st.SearchStrategy | None = None, max_size: int = 4) -> bytes:
    """Fields drawn from ``fields`` in any order, any repeated, with one from ``key`` among them; one in 100
    messages has an odd field too."""
    parts = draw(st.lists(fields, max_size=max_size))
    extra = [draw(key)] if key is not None else []
    if draw(st.integers(0, 99)) == 0:
        extra.append(draw(odd_fields))
    for part in extra:
        parts.insert(draw(st.integers(0, len(parts))), part)
    return b"".join(parts)


raw_keys = field(1, keys)
raw_puts = message(
    st.one_of(
        raw_keys,
        field(2, st.binary(max_size=20)),
        field(3, raw_ints),
        field(4, raw_ints),
        field(5, raw_bools),
        field(6, raw_bools),
    ),
    raw_keys,
)
raw_ranges = message(
    st.one_of(
        raw_keys,
        field(2, ends),
        field(6, sort_targets),
        *(field(number, raw_ints) for number in (3, 4, 5, 7, 8, 9, 10, 11, 12, 13)),
    ),
    raw_keys,
)
raw_deletes = message(st.one_of(raw_keys, field(2, ends), field(3, raw_ints)), raw_keys)
raw_compares = message(
    st.one_of(
        field(3, keys),
        field(7, st.binary(max_size=3)),
        field(64, ends),
        *(field(number, raw_ints) for number in (1, 2, 4, 5, 6, 8)),
    ),
    field(3, keys),
)
raw_requests = st.one_of(field(1, raw_ranges), field(2, raw_puts), field(3, raw_deletes))
raw_ops = mostly(
    raw_requests,
    st.one_of(
        st.just(b""),  # no request
        message(raw_requests, raw_requests, max_size=2),  # two requests: merged or overridden by protobuf
        field(4, st.just(b"")),  # a nested txn
    ),
    6,
)
raw_txns = message(st.one_of(field(1, raw_compares), field(2, raw_ops), field(3, raw_ops)), max_size=8)


@settings(max_examples=300)
@given(data=raw_txns, max_txn_ops=max_ops)
def test_non_canonical_bytes(data, max_txn_ops):
    check(data, max_txn_ops, plain=False)


# -- the shapes clients send, and what is not read ----------------------------------------------------

KEY = b"/registry/cas/1/00000"
KUBERNETES = pb.TxnRequest(
    compare=[pb.Compare(key=KEY, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=5)],
    success=[pb.RequestOp(request_put=pb.PutRequest(key=KEY, value=b"12345678"))],
    failure=[pb.RequestOp(request_range=pb.RangeRequest(key=KEY))],
)


def put(key: bytes, value: bytes = b"") -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value))


def delete(key: bytes, range_end: bytes = b"") -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=range_end))


get = pb.RequestOp(request_range=pb.RangeRequest(key=b"k", sort_target=pb.RangeRequest.VALUE))


@each_scanner
@pytest.mark.parametrize(
    "txn, expected",
    [
        (KUBERNETES, (False, KV_OVERHEAD + len(KEY) + 8, twin.OK)),
        (
            pb.TxnRequest(success=[put(b"a", b"1"), put(b"b"), put(b"c"), put(b"d", b"22")]),
            (False, 4 * (KV_OVERHEAD + 1) + 3, twin.OK),
        ),
        (pb.TxnRequest(success=[get, get], failure=[get]), (True, 0, twin.OK)),
        (pb.TxnRequest(success=[delete(b"a", b"c")]), (False, 0, twin.OK)),
        (pb.TxnRequest(), (True, 0, twin.OK)),
        (pb.TxnRequest(success=[put(b"a")], failure=[put(b"bb", b"v")]), (False, KV_OVERHEAD + 3, twin.OK)),
        (pb.TxnRequest(success=[get] * 5), (True, 0, twin.ERR_TOO_MANY_OPS)),
        (pb.TxnRequest(compare=[pb.Compare()], success=[put(b"")]), (False, KV_OVERHEAD, twin.ERR_EMPTY_KEY)),
        (pb.TxnRequest(failure=[pb.RequestOp()]), (True, 0, twin.ERR_KEY_NOT_FOUND)),
        (pb.TxnRequest(success=[put(b"b"), delete(b"a", b"c")]), (False, KV_OVERHEAD + 1, twin.ERR_DUPLICATE_KEY)),
        (pb.TxnRequest(success=[delete(b"c", b"a"), put(b"b")]), (False, KV_OVERHEAD + 1, twin.OK)),
        (pb.TxnRequest(success=[delete(b"a", b"c"), put(b"c")]), (False, KV_OVERHEAD + 1, twin.OK)),
        (pb.TxnRequest(success=[delete(b"b"), put(b"b\0")]), (False, KV_OVERHEAD + 2, twin.OK)),
        (pb.TxnRequest(success=[put(b"b"), put(b"b")]), (False, 2 * KV_OVERHEAD + 2, twin.ERR_DUPLICATE_KEY)),
    ],
)
def test_plain_shapes(scanner, txn, expected):
    data = txn.SerializeToString()
    assert scanner.scan(data, 4, KV_OVERHEAD) == expected
    check(data, 4, plain=True, scanners=[scanner])


def wrap(number: int, message: bytes) -> bytes:
    """``message`` (under 128 bytes) as length-delimited field ``number``."""
    return varint(number << 3 | 2) + varint(len(message)) + message


NOT_PLAIN = {
    "nested txn": pb.TxnRequest(success=[pb.RequestOp(request_txn=pb.TxnRequest())]).SerializeToString(),
    "unknown sort target": wrap(3, wrap(1, pb.RangeRequest(key=b"k", sort_target=5).SerializeToString())),
    "unknown field": KUBERNETES.SerializeToString() + b"\x20\x01",
    "unknown field in a compare": wrap(1, b"\x1a\x01k\x78\x00"),
    "unknown field in a range": wrap(2, wrap(1, b"\x0a\x01k\x78\x00")),
    "unknown field in a put": wrap(2, wrap(2, b"\x0a\x01k\x38\x00")),
    "unknown field in a delete": wrap(2, wrap(3, b"\x0a\x01k\x20\x00")),
    "unknown field in an op": wrap(2, wrap(5, b"")),
    "a put's key as a varint": wrap(2, wrap(2, b"\x08\x01")),
    "two requests in an op": wrap(2, wrap(1, b"") + wrap(2, b"")),
    "truncated": KUBERNETES.SerializeToString()[:-1],
    "a field key in 6 bytes": b"\x8a\x80\x80\x80\x80\x00\x00",
}


@each_scanner
@pytest.mark.parametrize("name", list(NOT_PLAIN))
def test_not_plain(scanner, name):
    assert scanner.scan(NOT_PLAIN[name], 128, KV_OVERHEAD) is None


def test_error_codes_agree():
    names = [name for name in dir(twin) if name == "OK" or name.startswith("ERR_")]
    assert len(names) == 7 and all(getattr(compiled, name) == getattr(twin, name) for name in names)


# -- kv_checks.outline_txn_bytes ----------------------------------------------------------------------


@settings(max_examples=150)
@given(txn=txns, max_txn_ops=max_ops)
def test_outline_txn_bytes(txn, max_txn_ops):
    def outline(o: kv_checks.TxnOutline):
        return o.read_only, o.cost, o.error and (type(o.error), o.error.code, o.error.message)

    expected = outline(kv_checks.outline_txn(txn, max_txn_ops))
    for scanner in (compiled, twin):
        with mock.patch.object(kv_checks, "txnscan", scanner):
            assert outline(kv_checks.outline_txn_bytes(txn.SerializeToString(), txn, max_txn_ops)) == expected
