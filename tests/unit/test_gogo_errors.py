"""The malformed-request texts of etcd's gogo-generated unmarshallers, reproduced from the wire bytes."""

from __future__ import annotations

import pytest

from etcdx.api.grpc.gogo_errors import go_name, unmarshal_error
from etcdx.pb.etcdserverpb import rpc_pb2


@pytest.mark.parametrize(
    ("message", "data", "text"),
    [
        (rpc_pb2.PutRequest, b"\x0f\x01", "proto: wrong wireType = 7 for field Key"),
        (rpc_pb2.RangeRequest, b"\x0b", "proto: wrong wireType = 3 for field Key"),
        (rpc_pb2.RangeRequest, b"\x00\x01", "proto: RangeRequest: illegal tag 0 (wire type 0)"),
        (rpc_pb2.RangeRequest, b"\x18" + b"\xff" * 11, "proto: integer overflow"),
        (rpc_pb2.RangeRequest, b"\x0a\x05ab", "unexpected EOF"),
        (rpc_pb2.RangeRequest, b"\x0c", "proto: RangeRequest: wiretype end group for non-group"),
        (rpc_pb2.RangeRequest, b"\x18\x01\x12\x01", "unexpected EOF"),
        (rpc_pb2.RangeRequest, b"\x22\x00", "proto: wrong wireType = 2 for field Revision"),
        (rpc_pb2.TxnRequest, b"\x0a\x02\x18\x05", "proto: wrong wireType = 0 for field Key"),  # nested Compare
        (rpc_pb2.RangeRequest, b"\xf8\x01\x01\xff\x01", "proto: illegal wireType 7"),  # unknown field 31, then junk
    ],
)
def test_malformed_bytes_get_gogos_text(message, data, text):
    assert unmarshal_error(message.DESCRIPTOR, data) == text


def test_well_formed_bytes_have_no_error():
    request = rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"k", version=3)], success=[rpc_pb2.RequestOp()])
    assert unmarshal_error(rpc_pb2.TxnRequest.DESCRIPTOR, request.SerializeToString()) is None


def test_go_field_names():
    assert [go_name(n) for n in ("key", "range_end", "TTL", "remaining_TTL", "peerURLs", "watch_id")] == [
        "Key",
        "RangeEnd",
        "TTL",
        "RemainingTTL",
        "PeerURLs",
        "WatchId",
    ]
