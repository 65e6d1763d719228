"""Request/response scenarios of the native client: what one client sends per request, as (method path,
protobuf bytes). The protobufs are spliced from pre-encoded pieces (keys have a fixed size, so every length
prefix is fixed); they decode to the same messages the grpcio scenarios build (tested). A scenario that
reads its answers has an ``observe`` attribute: called with each response message, it returns an outcome
label to count or None. The lease keep-alive scenario is a stream and lives in native_worker. Pure."""

from __future__ import annotations

import random
from collections.abc import Callable

from etcdx.cli.bench.scenarios import CasClient, Keys, first_reply_label, range_message
from etcdx.pb.etcdserverpb import rpc_pb2

PUT = b"/etcdserverpb.KV/Put"
RANGE = b"/etcdserverpb.KV/Range"
TXN = b"/etcdserverpb.KV/Txn"
LEASE_GRANT = b"/etcdserverpb.Lease/LeaseGrant"
LEASE_KEEPALIVE = b"/etcdserverpb.Lease/LeaseKeepAlive"

NextRequest = Callable[[], tuple[bytes, bytes]]


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_prefix(field: int, size: int) -> bytes:
    """Tag (wire type 2, length-delimited) and length of a field of ``size`` bytes."""
    return varint(field << 3 | 2) + varint(size)


def _field(field: int, data: bytes) -> bytes:
    return length_prefix(field, len(data)) + data if data else b""


class _Pieces:
    """The fixed parts of the messages for keys of ``key_size`` bytes and the given value."""

    def __init__(self, key_size: int, value: bytes) -> None:
        self.key = length_prefix(1, key_size)  # PutRequest.key / RangeRequest.key
        self.value = _field(2, value)  # PutRequest.value
        put_size = len(self.key) + key_size + len(self.value)
        self.put_op = length_prefix(2, put_size)  # RequestOp.request_put
        self.put_success = length_prefix(2, len(self.put_op) + put_size)  # TxnRequest.success
        range_size = len(self.key) + key_size
        self.range_op = length_prefix(1, range_size)  # RequestOp.request_range
        self.range_success = length_prefix(2, len(self.range_op) + range_size)

    def put(self, key: bytes) -> bytes:
        return self.key + key + self.value

    def txn_put(self, key: bytes) -> bytes:
        return self.put_success + self.put_op + self.key + key + self.value

    def txn_range(self, key: bytes) -> bytes:
        return self.range_success + self.range_op + self.key + key


def put(options, rng: random.Random, offset: int) -> NextRequest:
    keys, pieces = Keys(options, rng, offset), _Pieces(options.key_size, b"v" * options.val_size)

    def request() -> tuple[bytes, bytes]:
        return PUT, pieces.put(keys())

    return request


def range_(options, rng: random.Random, offset: int) -> NextRequest:
    encoded = range_message(options).SerializeToString()

    def request() -> tuple[bytes, bytes]:
        return RANGE, encoded

    def observe(message: bytes) -> str | None:
        """The first reply only is decoded (a page is large): its size is the outcome."""
        request.observe = None
        return first_reply_label(rpc_pb2.RangeResponse.FromString(message))

    request.observe = observe
    return request


def txn_put(options, rng: random.Random, offset: int) -> NextRequest:
    keys, pieces = Keys(options, rng, offset), _Pieces(options.key_size, b"v" * options.val_size)
    ops = range(options.txn_ops)

    def request() -> tuple[bytes, bytes]:
        return TXN, b"".join([pieces.txn_put(keys()) for _ in ops])

    return request


def txn_mixed(options, rng: random.Random, offset: int) -> NextRequest:
    """Reads (serializable: a Range; linearizable: a Range in a Txn) and writes (a Put in a Txn) in
    --rw-ratio proportion, as the grpcio scenario."""
    keys, pieces = Keys(options, rng, offset), _Pieces(options.key_size, b"v" * options.val_size)
    read_share = options.rw_ratio / (options.rw_ratio + 1)
    serializable = b"\x38\x01" if options.consistency == "s" else b""  # RangeRequest.serializable = true
    random_share = rng.random

    def request() -> tuple[bytes, bytes]:
        key = keys()
        if random_share() < read_share:
            if serializable:
                return RANGE, pieces.key + key + serializable
            return TXN, pieces.txn_range(key)
        return TXN, pieces.txn_put(key)

    return request


def txn_cas(options, rng: random.Random, offset: int) -> NextRequest:
    """The grpcio scenario's compare-and-put Txn (scenarios.CasClient), serialized by protobuf."""
    client = CasClient(options, offset)

    def request() -> tuple[bytes, bytes]:
        return TXN, client.next_txn().SerializeToString()

    def observe(message: bytes) -> str:
        return client.learn(rpc_pb2.TxnResponse.FromString(message))

    request.observe = observe
    return request


SCENARIOS = {"put": put, "range": range_, "txn-put": txn_put, "txn-mixed": txn_mixed, "txn-cas": txn_cas}
