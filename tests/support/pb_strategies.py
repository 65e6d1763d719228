"""Hypothesis strategies for the protobuf messages the native codecs write (small and edge-of-range numbers)."""

from __future__ import annotations

from hypothesis import strategies as st

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2

u64 = st.one_of(st.integers(0, 300), st.integers(0, (1 << 64) - 1))
i64 = st.one_of(st.integers(-5, 300), st.integers(-(1 << 63), (1 << 63) - 1))
headers = st.builds(rpc_pb2.ResponseHeader, cluster_id=u64, member_id=u64, revision=i64, raft_term=u64)


def key_values(max_key: int = 20, max_value: int = 200) -> st.SearchStrategy[kv_pb2.KeyValue]:
    return st.builds(
        kv_pb2.KeyValue,
        key=st.binary(max_size=max_key),
        create_revision=i64,
        mod_revision=i64,
        version=i64,
        value=st.binary(max_size=max_value),
        lease=i64,
    )
