"""Codecs on the request path: raft Entry, Range responses, the HTTP/2 server driver.

Run: cd /work/main && python setup.py build_ext --inplace && pytest bench/test_bench_codecs.py --benchmark-only
- raft Entry: encode / decode a batch of entries with the entrycodec module, compiled and pure, beside
  upb protobuf's Entry.SerializeToString / FromString (from and to Entry objects) as the reference.
- Range response, encode only: RangeResponse bytes from a header and N stored KeyValue blobs, with the
  rangecodec module, compiled and pure; upb parses the blobs and serializes a RangeResponse (what a
  server that holds no raw bytes does).
- Range + encode: what the KV service's Range does, on a real LMDB store of 10000 keys, at 1, 100 and
  10000 keys per response: KVStore.range_encoded with the rangecodec under test, and upb = the protobuf
  path (KVStore.range, then SerializeToString). The key index is whatever ``load("btree")`` gives.
- HTTP/2: etcdx.net.http2.ServerConnection on the h2codec module, compiled and pure (a copy of the
  driver module bound to each), with a scripted `h2` client. The client's bytes are made in setup, so a
  round times only the server side: decoding N unary gRPC requests, or encoding N responses (headers, one
  DATA, trailers) as the gRPC layer sends them.
The "compiled" cases are skipped only when the extension is not built.
"""

from __future__ import annotations

import importlib
import importlib.util

import h2.config
import h2.connection
import pytest

import etcdx._native
from etcdx.mvcc import kvstore
from etcdx.mvcc.alarms import Alarms
from etcdx.mvcc.backend import Backend
from etcdx.mvcc.kvstore import KVStore
from etcdx.net import http2
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.etcdxpb.raft_pb2 import Entry
from etcdx.pb.mvccpb import kv_pb2
from etcdx.server.apply import Applier

ENTRIES = 1000
CALLS = 500
STORE_KEYS = 10_000
VALUE = b"v" * 100

REQUEST_HEADERS = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/etcdserverpb.KV/Range"),
    (b":authority", b"127.0.0.1:2379"),
    (b"content-type", b"application/grpc"),
    (b"user-agent", b"grpc-python/1.70.0 grpc-c/45.0.0 (linux; chttp2)"),
    (b"te", b"trailers"),
    (b"grpc-accept-encoding", b"identity,deflate,gzip"),
]
RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]


def grpc_frame(message: bytes) -> bytes:
    return b"\0" + len(message).to_bytes(4, "big") + message


def implementation(module: str, variant: str):
    """``etcdx._native`` module ``module`` as ``variant``: "compiled", "pure", or None for "upb"."""
    if variant == "upb":
        return None
    try:
        return importlib.import_module(
            f"etcdx._native._{module}" if variant == "compiled" else f"etcdx._native.{module}_py"
        )
    except ImportError:
        pytest.skip(f"the _{module} extension is not built")


VARIANTS = ["compiled", "pure", "upb"]


# -- raft Entry ------------------------------------------------------------------------------


def _entries() -> list[Entry]:
    data = InternalRequest(put=rpc_pb2.PutRequest(key=b"/registry/pods/default/pod-1", value=VALUE))
    return [Entry(term=7, index=i, data=data.SerializeToString()) for i in range(1, ENTRIES + 1)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_entry_encode(benchmark, variant):
    codec = implementation("entrycodec", variant)
    entries = _entries()
    fields = [(e.term, e.index, e.type, e.data) for e in entries]

    def encode_all() -> list[bytes]:
        if codec is None:
            return [e.SerializeToString() for e in entries]
        return [codec.encode(*f) for f in fields]

    benchmark.group = f"raft Entry encode ({ENTRIES} entries)"
    assert benchmark(encode_all) == [e.SerializeToString() for e in entries]


@pytest.mark.parametrize("variant", VARIANTS)
def test_entry_decode(benchmark, variant):
    codec = implementation("entrycodec", variant)
    encoded = [e.SerializeToString() for e in _entries()]
    decode = Entry.FromString if codec is None else codec.decode
    benchmark.group = f"raft Entry decode ({ENTRIES} entries)"
    decoded = benchmark(lambda: [decode(b) for b in encoded])
    assert len(decoded) == ENTRIES


# -- HTTP/2 ----------------------------------------------------------------------------------


def driver(variant: str, monkeypatch):
    """A fresh copy of the etcdx.net.http2 module whose ``load("h2codec")`` gave the ``variant`` codec."""
    codec = implementation("h2codec", variant)
    spec = importlib.util.find_spec("etcdx.net.http2")
    module = importlib.util.module_from_spec(spec)
    load = etcdx._native.load
    with monkeypatch.context() as patch:
        patch.setattr(etcdx._native, "load", lambda name: codec if name == "h2codec" else load(name))
        spec.loader.exec_module(module)
    return module


def connected_pair(driver_module) -> tuple[h2.connection.H2Connection, http2.ServerConnection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    server = driver_module.ServerConnection()
    server.receive(client.data_to_send())
    client.receive_data(server.bytes_to_send())
    server.receive(client.data_to_send())
    return client, server


def scripted_requests(client: h2.connection.H2Connection) -> list[bytes]:
    """The client's bytes for CALLS unary Range calls, one chunk per call (as they would arrive)."""
    body = grpc_frame(rpc_pb2.RangeRequest(key=b"foo", serializable=True).SerializeToString())
    chunks = []
    for _ in range(CALLS):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, REQUEST_HEADERS)
        client.send_data(stream_id, body, end_stream=True)
        chunks.append(client.data_to_send())
    return chunks


def receive_all(server: http2.ServerConnection, chunks: list[bytes]) -> list[int]:
    """Decodes every call as the gRPC layer does (events, then acknowledging the data); returns stream ids."""
    stream_ids = []
    for chunk in chunks:
        for event in server.receive(chunk):
            if type(event).__name__ == "Data":  # the driver copy under test has its own event classes
                server.acknowledge(event.stream_id, event.flow_controlled_length)
                stream_ids.append(event.stream_id)
    server.bytes_to_send()
    return stream_ids


@pytest.mark.parametrize("variant", ["compiled", "pure"])
def test_http2_receive_requests(benchmark, variant, monkeypatch):
    module = driver(variant, monkeypatch)
    state: dict = {}

    def setup():
        client, state["server"] = connected_pair(module)
        state["chunks"] = scripted_requests(client)
        return (), {}

    benchmark.group = f"http2 server driver: receive {CALLS} unary calls"
    stream_ids = benchmark.pedantic(lambda: receive_all(state["server"], state["chunks"]), setup=setup, rounds=20)
    assert len(stream_ids) == CALLS


@pytest.mark.parametrize("variant", ["compiled", "pure"])
def test_http2_send_responses(benchmark, variant, monkeypatch):
    module = driver(variant, monkeypatch)
    body = grpc_frame(
        rpc_pb2.RangeResponse(kvs=[{"key": b"foo", "value": b"bar", "mod_revision": 2}], count=1).SerializeToString()
    )
    state: dict = {}

    def setup():
        client, server = connected_pair(module)
        state["server"], state["stream_ids"] = server, receive_all(server, scripted_requests(client))
        return (), {}

    def respond_all() -> int:
        server = state["server"]
        sent = 0
        for stream_id in state["stream_ids"]:
            server.send_headers(stream_id, RESPONSE_HEADERS)
            server.send_data(stream_id, body)
            server.send_headers(stream_id, TRAILERS, end_stream=True)
            sent += len(server.bytes_to_send())
        return sent

    benchmark.group = f"http2 server driver: respond to {CALLS} unary calls"
    assert benchmark.pedantic(respond_all, setup=setup, rounds=20) > CALLS * len(body)


# -- Range responses -------------------------------------------------------------------------


def pod(n: int) -> bytes:
    return b"/registry/pods/pod-%06d" % n


HEADER = rpc_pb2.ResponseHeader(
    cluster_id=0xCDF818194E3A8C32, member_id=0x8E9E05C52164694D, revision=10_001, raft_term=2
)


@pytest.mark.parametrize("keys", [1, 100, 10_000], ids=lambda n: f"{n}-keys")
@pytest.mark.parametrize("variant", VARIANTS)
def test_range_response_encode(benchmark, variant, keys):
    codec = implementation("rangecodec", variant)
    stored = [
        kv_pb2.KeyValue(
            key=pod(n), create_revision=n + 2, mod_revision=n + 2, version=1, value=VALUE
        ).SerializeToString()
        for n in range(keys)
    ]
    header = HEADER.SerializeToString()
    if codec is None:

        def encode() -> bytes:
            response = rpc_pb2.RangeResponse(count=keys)
            response.header.CopyFrom(HEADER)
            response.kvs.extend([kv_pb2.KeyValue.FromString(b) for b in stored])
            return response.SerializeToString()

    else:

        def encode() -> bytes:
            return codec.encode(header, stored, False, keys)

    benchmark.group = f"range response encode ({keys} stored KeyValues)"
    assert rpc_pb2.RangeResponse.FromString(benchmark(encode)).count == keys


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """STORE_KEYS keys under /registry/pods/, each written once, in batches of 1000 as apply would."""
    backend = Backend(str(tmp_path_factory.mktemp("range-lmdb")), map_size=256 << 20)
    kv = KVStore(backend)
    applier = Applier(kv, kv.lessor, Alarms())
    for start in range(0, STORE_KEYS, 1000):
        with kv.apply_batch():
            for n in range(start, start + 1000):
                put = rpc_pb2.PutRequest(key=pod(n), value=VALUE)
                applier.apply_request(kv.consistent_index + 1, InternalRequest(put=put))
    yield kv
    backend.close()


RANGES = {
    "1-key": (1, rpc_pb2.RangeRequest(key=pod(500))),
    "100-keys": (100, rpc_pb2.RangeRequest(key=pod(500), range_end=pod(600))),
    f"{STORE_KEYS}-keys": (STORE_KEYS, rpc_pb2.RangeRequest(key=b"/registry/pods/", range_end=b"/registry/pods0")),
}


@pytest.mark.parametrize("case", list(RANGES))
@pytest.mark.parametrize("variant", VARIANTS)
def test_range_response(benchmark, store, monkeypatch, variant, case):
    codec = implementation("rangecodec", variant)
    keys, request = RANGES[case]
    if codec is None:

        def range_and_encode() -> bytes:
            response = store.range(request)
            header = rpc_pb2.ResponseHeader()
            header.CopyFrom(HEADER)
            header.revision = response.header.revision
            response.header.CopyFrom(header)
            return response.SerializeToString()

    else:
        monkeypatch.setattr(kvstore, "rangecodec", codec)

        def range_and_encode() -> bytes:
            header = rpc_pb2.ResponseHeader()
            header.CopyFrom(HEADER)
            return store.range_encoded(request, header)

    benchmark.group = f"range + encode response ({case}, LMDB, {STORE_KEYS}-key store)"
    encoded = benchmark(range_and_encode)
    assert rpc_pb2.RangeResponse.FromString(encoded).count == keys
