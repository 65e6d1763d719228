"""What the gRPC server reads from a request's headers: the loaded module (compiled or twin, by
ETCDX_NO_EXTENSIONS) against known answers, and the compiled module against its twin on random lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx._native import load
from tests.support.native_pair import compiled_and_twin

gh = load("grpchead")

CALL = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/etcdserverpb.KV/Range"), (b":authority", b"x")]
GRPC = (b"content-type", b"application/grpc")


@pytest.mark.parametrize(
    ("headers", "answer"),
    [
        ([*CALL, GRPC, (b"te", b"trailers")], ("/etcdserverpb.KV/Range", True, None, {})),
        ([*CALL, (b"content-type", b"application/grpc+proto")], ("/etcdserverpb.KV/Range", True, None, {})),
        ([*CALL, (b"content-type", b"application/grpc;charset=x")], ("/etcdserverpb.KV/Range", True, None, {})),
        ([*CALL, (b"content-type", b"application/grpcx")], ("/etcdserverpb.KV/Range", False, None, {})),
        ([*CALL, (b"content-type", b"application/json")], ("/etcdserverpb.KV/Range", False, None, {})),
        ([*CALL], ("/etcdserverpb.KV/Range", False, None, {})),
        ([(b":method", b"GET"), *CALL[1:], GRPC], ("/etcdserverpb.KV/Range", False, None, {})),
        ([*CALL, GRPC, (b":method", b"GET")], ("/etcdserverpb.KV/Range", False, None, {})),
        ([*CALL, GRPC, (b"grpc-timeout", b"100m")], ("/etcdserverpb.KV/Range", True, b"100m", {})),
        (
            [*CALL, GRPC, (b"user-agent", b"u"), (b"token", b"t\xe9"), (b"token", b"2"), (b"a", b"")],
            ("/etcdserverpb.KV/Range", True, None, {"token": "2", "a": ""}),
        ),
        ([(b":path", b"/\xff"), (b":method", b"POST"), GRPC], ("/\ufffd", True, None, {})),
        ([], ("", False, None, {})),
    ],
)
def test_request_head(headers, answer):
    assert gh.request_head(headers) == answer


def test_metadata_keeps_the_order_of_first_appearance():
    head = gh.request_head([(b"b", b"1"), (b"a", b"2"), (b"b", b"3")])
    assert list(head[3].items()) == [("b", "3"), ("a", "2")]


def _both():
    return compiled_and_twin("grpchead")


_names = st.one_of(
    st.sampled_from(
        [b":path", b":method", b":scheme", b"content-type", b"grpc-timeout", b"te", b"user-agent", b":", b"", b"x"]
    ),
    st.binary(max_size=14),
)
_values = st.one_of(
    st.sampled_from([b"POST", b"application/grpc", b"application/grpc+proto", b"application/grpc;", b"1S", b""]),
    st.binary(max_size=20),
)


@settings(max_examples=500)
@given(st.lists(st.tuples(_names, _values), max_size=10))
def test_compiled_matches_twin(headers):
    compiled, twin = _both()
    head = compiled.request_head(headers)
    assert head == twin.request_head(headers)
    assert list(head[3]) == list(twin.request_head(headers)[3])
