"""RangeResponse encoding, compiled and twin: the bytes protobuf (upb) gives for the same response, and
KVStore.range_encoded (which copies stored KeyValue bytes) against KVStore.range serialized, on a store on
each backend (a real LMDB file; memory), for any Range request.

The compiled module is imported directly: if it was not built, its tests fail instead of skipping.
"""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2
from tests.support.pb_strategies import headers, i64, key_values, u64
from tests.support.store import BACKENDS, Store

IMPLEMENTATIONS = ["etcdx._native._rangecodec", "etcdx._native.rangecodec_py"]
compiled, twin = (importlib.import_module(name) for name in IMPLEMENTATIONS)
each_codec = pytest.mark.parametrize("codec", [compiled, twin], ids=["compiled", "twin"])


@each_codec
@given(header=headers, kvs=st.lists(key_values(), max_size=8), more=st.booleans(), count=i64)
def test_bytes_equal_protobufs(codec, header, kvs, more, count):
    expected = rpc_pb2.RangeResponse(header=header, kvs=kvs, more=more, count=count).SerializeToString()
    stored = [kv.SerializeToString() for kv in kvs]
    assert codec.encode(header.SerializeToString(), stored, more, count) == expected
    assert codec.encode(header.SerializeToString(), iter(stored), more, count) == expected


@each_codec
@given(header=headers)
def test_a_header_encodes_as_protobuf_does(codec, header):
    encoded = codec.encode_header(header.cluster_id, header.member_id, header.revision, header.raft_term)
    assert encoded == header.SerializeToString()


@each_codec
def test_a_header_field_out_of_range_is_refused(codec):
    for fields in ((1 << 64, 0, 0, 0), (0, -1, 0, 0), (0, 0, 1 << 63, 0), (0, 0, 0, 1 << 64)):
        with pytest.raises(OverflowError):
            codec.encode_header(*fields)


@each_codec
def test_a_large_response_round_trips(codec):
    kvs = [kv_pb2.KeyValue(key=b"k%06d" % i, value=b"v" * 1000, mod_revision=i + 2) for i in range(3000)]
    encoded = codec.encode(b"\x18\x07", [kv.SerializeToString() for kv in kvs], True, 3001)
    response = rpc_pb2.RangeResponse.FromString(encoded)
    assert list(response.kvs) == kvs and response.more and response.count == 3001 and response.header.revision == 7


@each_codec
def test_bad_arguments(codec):
    for count in (1 << 63, -(1 << 63) - 1):
        with pytest.raises(OverflowError):
            codec.encode(b"", [], False, count)
    with pytest.raises(TypeError):
        codec.encode(b"", ["text"], False, 0)


# -- KVStore.range_encoded ---------------------------------------------------------------------

KEYS = [b"a", b"a/1", b"a/2", b"a/3", b"b", b"b/1", b"c"]


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    """About 30 revisions of puts, overwrites and deletes over KEYS, compacted at revision 5 (a KVStore on
    each backend), the batch transaction left open."""
    harness = Store(request.param, str(tmp_path_factory.mktemp("range-store")), commit_each=False)
    apply = harness.apply

    for n in range(25):
        key = KEYS[(n * 3) % len(KEYS)]
        apply(put=rpc_pb2.PutRequest(key=key, value=b"value-%d" % n * (n % 4)))
        if n % 7 == 6:
            apply(delete_range=rpc_pb2.DeleteRangeRequest(key=KEYS[n % len(KEYS)]))
    apply(compaction=rpc_pb2.CompactionRequest(revision=5))
    yield harness.kv
    harness.close()


def range_requests(**overrides) -> st.SearchStrategy[rpc_pb2.RangeRequest]:
    fields = dict(
        key=st.sampled_from([b"a", b"a", b"a/", b"a/2", b"b", b"c", b"\x00", b""]),
        range_end=st.sampled_from([b"\x00", b"\x00", b"d", b"b0", b"a0", b"a/3", b""]),
        limit=st.sampled_from([0, 0, 1, 2, 3, 10, -1]),
        revision=st.sampled_from([0, 0, 0, 0, 3, 6, 12, 20, 28, 100]),
        sort_order=st.sampled_from([0, 0, 1, 2, 7]),
        sort_target=st.sampled_from([0, 1, 2, 3, 4, 9]),
        serializable=st.booleans(),
        keys_only=st.booleans(),
        count_only=st.sampled_from([False, False, True]),
        min_mod_revision=st.sampled_from([0, 0, 8]),
        max_mod_revision=st.sampled_from([0, 0, 20]),
        min_create_revision=st.sampled_from([0, 0, 8]),
        max_create_revision=st.sampled_from([0, 0, 20]),
    )
    return st.builds(rpc_pb2.RangeRequest, **(fields | overrides))


# Half the requests are of the kind served from the stored bytes (key order, no filter, values wanted).
no = st.just(0)
requests = st.one_of(
    range_requests(
        sort_target=no,
        keys_only=st.just(False),
        min_mod_revision=no,
        max_mod_revision=no,
        min_create_revision=no,
        max_create_revision=no,
    ),
    range_requests(),
)


def outcome(call):
    try:
        return call()
    except errors.EtcdError as exc:
        return exc.code, exc.message


@settings(max_examples=300)
@given(request=requests, identity=st.tuples(u64, u64, u64))
def test_range_encoded_equals_range_serialized(store, request, identity):
    def through_protobuf() -> bytes:
        response = store.range(request)
        cluster_id, member_id, raft_term = identity
        response.header.CopyFrom(
            rpc_pb2.ResponseHeader(
                cluster_id=cluster_id, member_id=member_id, raft_term=raft_term, revision=response.header.revision
            )
        )
        return response.SerializeToString()

    expected = outcome(through_protobuf)
    assert outcome(lambda: store.range_encoded(request, identity)) == expected
    if isinstance(expected, bytes):
        assert rpc_pb2.RangeResponse.FromString(expected).header.revision == store.current_revision
