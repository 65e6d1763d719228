"""A client's write proposed with its request bytes embedded (server/proposal_entry.py, _native proposal codec,
compiled and twin): the same InternalRequest as the plain entry, byte for byte for a canonical request and once
parsed for any other, and --max-request-bytes deciding as it does for the plain entry.

The compiled module is imported directly: if it was not built, its tests fail instead of skipping.
"""

from __future__ import annotations

import importlib

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx import errors
from etcdx.auth.tokens import AuthInfo
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server import caller, proposal_entry
from etcdx.server.server import EtcdServer
from tests.support.server_settings import server_settings

IMPLEMENTATIONS = ["etcdx._native._proposal", "etcdx._native.proposal_py"]
compiled, twin = (importlib.import_module(name) for name in IMPLEMENTATIONS)
each_codec = pytest.mark.parametrize("codec", [compiled, twin], ids=["compiled", "twin"])

u64 = st.one_of(st.integers(0, 300), st.integers(0, (1 << 64) - 1))
request_ids = st.one_of(st.integers(1, 300), st.integers(1, (1 << 64) - 1))  # a member's ids are never 0
i64 = st.one_of(st.integers(-5, 300), st.integers(-(1 << 63), (1 << 63) - 1))
callers = st.one_of(
    st.none(), st.just(caller.ANONYMOUS), st.builds(AuthInfo, st.text(max_size=20), st.integers(0, (1 << 64) - 1))
)
puts = st.builds(
    rpc_pb2.PutRequest,
    key=st.binary(max_size=30),
    value=st.binary(max_size=300),
    lease=i64,
    prev_kv=st.booleans(),
    ignore_value=st.booleans(),
    ignore_lease=st.booleans(),
)
deletes = st.builds(rpc_pb2.DeleteRangeRequest, key=st.binary(max_size=30), range_end=st.binary(max_size=30))
compares = st.builds(
    rpc_pb2.Compare,
    result=st.integers(-3, 5),
    target=st.integers(-3, 5),
    key=st.binary(max_size=20),
    mod_revision=i64,
)
ops = st.one_of(
    st.builds(rpc_pb2.RequestOp, request_put=puts),
    st.builds(rpc_pb2.RequestOp, request_delete_range=deletes),
    st.builds(rpc_pb2.RequestOp, request_range=st.builds(rpc_pb2.RangeRequest, key=st.binary(max_size=20))),
)
txns = st.builds(
    rpc_pb2.TxnRequest,
    compare=st.lists(compares, max_size=4),
    success=st.lists(ops, max_size=4),
    failure=st.lists(ops, max_size=4),
)
requests = st.one_of(
    st.tuples(st.just("put"), puts), st.tuples(st.just("delete_range"), deletes), st.tuples(st.just("txn"), txns)
)


def plain_entry(request_id: int, info: AuthInfo | None, field: str, request) -> bytes:
    """The entry as EtcdServer encodes an InternalRequest it is given (its _encode_proposal)."""
    internal = InternalRequest(id=request_id)
    getattr(internal, field).CopyFrom(request)
    if info is not None:
        internal.auth.SetInParent()
        internal.auth.username = info.username
        internal.auth.revision = info.revision
    return internal.SerializeToString()


def embedded(codec, request_id: int, info: AuthInfo | None, field: str, data: bytes) -> bytes:
    """proposal_entry.embedded's entry through ``codec``, under no size limit."""
    return codec.embed(request_id, proposal_entry.auth_stamp(info), proposal_entry.FIELD_KEYS[field], data)


@each_codec
@given(request_id=request_ids, info=callers, request=requests)
@settings(max_examples=200, deadline=None)
def test_a_canonical_request_gives_the_plain_entry_byte_for_byte(codec, request_id, info, request):
    field, message = request
    entry = embedded(codec, request_id, info, field, message.SerializeToString())
    assert entry == plain_entry(request_id, info, field, message)


@each_codec
@given(request_id=request_ids, info=callers, first=txns, second=txns, unknown=st.binary(max_size=20))
@settings(max_examples=200, deadline=None)
def test_any_request_bytes_parse_back_to_the_plain_entrys_request(codec, request_id, info, first, second, unknown):
    """Bytes protobuf parses but would not write: two encodings concatenated (merged: repeated fields appended,
    scalars the last one's) and an unknown field (field 99, length-delimited) at the end."""
    data = first.SerializeToString() + second.SerializeToString() + b"\x9a\x06" + bytes([len(unknown)]) + unknown
    request = rpc_pb2.TxnRequest.FromString(data)
    entry = embedded(codec, request_id, info, "txn", data)
    assert InternalRequest.FromString(entry) == InternalRequest.FromString(
        plain_entry(request_id, info, "txn", request)
    )


def inflating_txn(compares: int) -> bytes:
    """A TxnRequest whose compares carry result -1 as a 5-byte varint: protobuf writes each back as 10 bytes,
    the most a message grows by being parsed and encoded again."""
    one = b"\x08\xff\xff\xff\xff\x0f"  # Compare.result = -1 (int32), 5 bytes
    return (b"\x0a" + bytes([len(one)]) + one) * compares


@given(compares=st.integers(0, 200), limit=st.integers(0, 6000), info=callers)
@settings(max_examples=300, deadline=None)
def test_the_embedded_entry_is_used_only_where_the_plain_one_fits_too(compares, limit, info):
    data = inflating_txn(compares)
    request = rpc_pb2.TxnRequest.FromString(data)
    request_id = (1 << 64) - 1
    stamp = proposal_entry.auth_stamp(info)
    entry = proposal_entry.embedded(request_id, stamp, "txn", data, limit)
    if entry is not None:
        assert len(plain_entry(request_id, info, "txn", request)) <= limit
        assert len(entry) <= limit


@each_codec
def test_field_keys_are_one_byte(codec):
    with pytest.raises(OverflowError):
        codec.embed(1, b"", 0x80, b"")
    with pytest.raises(OverflowError):
        codec.embed(-1, b"", 0x1A, b"")


def test_a_member_refuses_a_client_write_by_its_plain_entrys_size(tmp_path):
    """Through EtcdServer.propose_client_nowait, as a client's Put arrives: a put whose plain entry is exactly
    --max-request-bytes is applied, one a byte over is refused "request is too large", and a small one (embedded
    as it came) is applied and read back."""
    limit = 4096

    async def main():
        server = EtcdServer(server_settings(str(tmp_path / "data"), max_request_bytes=limit))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)

            async def put(key: bytes, value: bytes):
                request = rpc_pb2.PutRequest(key=key, value=value)
                done = trio.Event()
                outcome = []

                def on_done(result):
                    outcome.append(result)
                    done.set()

                with caller.acting_as(None):
                    try:
                        server.propose_client_nowait("put", request, request.SerializeToString(), on_done)
                    except errors.EtcdError as exc:
                        return exc
                await done.wait()
                return outcome[0]

            request_id = server._next_request_id()  # the ids that follow encode to as many bytes

            def plain_size(length: int) -> int:
                request = rpc_pb2.PutRequest(key=b"k", value=b"v" * length)
                return len(plain_entry(request_id, caller.ANONYMOUS, "put", request))

            length = max(n for n in range(limit) if plain_size(n) <= limit)
            assert plain_size(length) == limit
            fits = await put(b"k", b"v" * length)
            assert isinstance(fits, rpc_pb2.PutResponse), fits
            over = await put(b"k", b"v" * (length + 1))
            assert isinstance(over, errors.EtcdError) and over.message == "etcdserver: request is too large"
            small = await put(b"small", b"value")
            assert isinstance(small, rpc_pb2.PutResponse)
            got = server.range(rpc_pb2.RangeRequest(key=b"k", range_end=b"t"))
            assert [(kv.key, len(kv.value)) for kv in got.kvs] == [(b"k", length), (b"small", 5)]
            nursery.cancel_scope.cancel()

    trio.run(main)
