"""The gateway's JSON mapping (etcdx/api/http/gateway_json.py, gateway_scan.py): the texts are those etcd 3.5.1's
gateway answered for the same bodies (observed with curl), so a client's parser and error matching keep working."""

from __future__ import annotations

import pytest

from etcdx.api.http.gateway_json import from_json, to_json
from etcdx.api.http.gateway_scan import GoJsonError
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"key":"Zm9"}', "illegal base64 data at input byte 0"),
        (b'{"key":"Zm9v!"}', "illegal base64 data at input byte 4"),
        (b'{"key":"Zm9v","limit":"x"}', "invalid character 'x' looking for beginning of value"),
        (b'{"key":"Zm9v","limit":1.5}', "json: cannot unmarshal number 1.5 into Go value of type int64"),
        (b'{"key":"Zm9v","limit":true}', "json: cannot unmarshal bool into Go value of type int64"),
        (b'{"key":"Zm9v","serializable":"yes"}', "json: cannot unmarshal string into Go value of type bool"),
        (b'{"key":"Zm9v","serializable":1}', "json: cannot unmarshal number into Go value of type bool"),
        (b"[1]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
        (b"5", "json: cannot unmarshal number into Go value of type map[string]json.RawMessage"),
        (b'{"key":"Zm9v"', "unexpected EOF"),
        (b'{"key":"Zm9v",}', "invalid character '}' looking for beginning of object key string"),
        (b'{"key" "Zm9v"}', "invalid character '\"' after object key"),
        (b"{bad", "invalid character 'b' looking for beginning of object key string"),
        (b"x", "invalid character 'x' looking for beginning of value"),
        (
            b'{"key":"Zm9v","limit":"18446744073709551616"}',
            "json: cannot unmarshal number 18446744073709551616 into Go value of type int64",
        ),
        (
            b'{"key":"Zm9v","sort_order":true}',
            "json: cannot unmarshal bool into Go value of type protoreflect.EnumNumber",
        ),
        (b'{"key":"Zm9v","sort_order":"1"}', 'unknown value "\\"1\\"" for enum etcdserverpb.RangeRequest.SortOrder'),
        (b'{"key":5}', "json: cannot unmarshal number into Go value of type []uint8"),
    ],
)
def test_bad_bodies_fail_with_gos_text(body, text):
    with pytest.raises(GoJsonError) as failure:
        from_json(rpc_pb2.RangeRequest, body)
    assert str(failure.value) == text


def test_bodies_are_read_as_jsonpb_reads_them():
    assert from_json(rpc_pb2.RangeRequest, b"  ") == rpc_pb2.RangeRequest()
    request = from_json(
        rpc_pb2.RangeRequest,
        b'{"key":"Zm9v","rangeEnd":"AA==","limit":"5","revision":7,"sort_order":"DESCEND","sort_target":2,'
        b'"keys_only":true,"KEY":"eA==","unknown":[1,{}],"min_mod_revision":null} trailing is not read',
    )
    assert request == rpc_pb2.RangeRequest(
        key=b"foo", range_end=b"\0", limit=5, revision=7, sort_order=2, sort_target=2, keys_only=True
    )
    assert from_json(rpc_pb2.RangeRequest, b'{"key":"YQ==","key":[98]}').key == b"b"  # the last one wins


def test_responses_are_written_as_grpc_gateway_writes_them():
    response = rpc_pb2.RangeResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=2**64 - 1, member_id=1, revision=2, raft_term=3),
        kvs=[kv_pb2.KeyValue(key=b"foo", create_revision=2, mod_revision=2, version=1, value=b"")],
        count=1,
    )
    assert to_json(response) == (
        '{"header":{"cluster_id":"18446744073709551615","member_id":"1","revision":"2","raft_term":"3"},'
        '"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1"}],"count":"1"}'
    )
    event = rpc_pb2.WatchResponse(watch_id=-1, events=[kv_pb2.Event(type=kv_pb2.Event.DELETE)], cancel_reason="<&>")
    assert to_json(event) == '{"watch_id":"-1","cancel_reason":"\\u003c\\u0026\\u003e","events":[{"type":"DELETE"}]}'
    assert to_json(rpc_pb2.HashResponse(hash=7)) == '{"hash":7}'
    assert to_json(rpc_pb2.DefragmentResponse()) == "{}"
