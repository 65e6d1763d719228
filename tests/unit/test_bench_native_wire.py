"""The native bench client's request bytes decode to the messages the grpcio scenarios build (same seed, same
keys), and gRPC statuses and message framing read as the report expects."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest

from etcdx.cli.bench import native_requests, scenarios
from etcdx.cli.bench.grpc_wire import frame_message, split_messages, trailers_error
from etcdx.pb.etcdserverpb import rpc_pb2


def options(**overrides) -> SimpleNamespace:
    values = {
        "key_size": 8,
        "val_size": 8,
        "key_space_size": 1000,
        "sequential_keys": False,
        "range_key": "foo",
        "range_end": "",
        "prefix": False,
        "limit": 0,
        "consistency": "l",
        "txn_ops": 1,
        "rw_ratio": 1.0,
    }
    return SimpleNamespace(**{**values, **overrides})


class Recorder:
    """Stands in for the grpcio stubs: keeps the request messages a scenario sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []
        self.kv = SimpleNamespace(Put=self._method("Put"), Range=self._method("Range"), Txn=self._method("Txn"))

    def _method(self, name: str):
        async def method(message):
            self.sent.append((name, message))

        return method


PARSERS = {b"Put": rpc_pb2.PutRequest, b"Range": rpc_pb2.RangeRequest, b"Txn": rpc_pb2.TxnRequest}


@pytest.mark.parametrize(
    ("scenario", "overrides"),
    [
        ("put", {}),
        ("put", {"key_size": 200, "val_size": 300, "sequential_keys": True}),
        ("put", {"val_size": 0}),
        ("range", {"consistency": "s", "limit": 10}),
        ("range", {"prefix": True}),
        ("range", {"range_end": "zzz"}),
        ("txn-put", {"txn_ops": 5, "key_size": 130}),
        ("txn-mixed", {"rw_ratio": 3.0}),
        ("txn-mixed", {"consistency": "s", "key_size": 300}),
    ],
)
def test_native_requests_decode_to_the_grpcio_scenarios_messages(scenario, overrides):
    opts = options(**overrides)
    recorder = Recorder()
    grpcio_request = scenarios.SCENARIOS[scenario](opts, recorder, random.Random(7), offset=3)
    native_request = native_requests.SCENARIOS[scenario](opts, random.Random(7), offset=3)
    for _ in range(50):
        asyncio.run(grpcio_request())
        path, data = native_request()
        name, expected = recorder.sent[-1]
        assert path == b"/etcdserverpb.KV/" + name.encode()
        assert PARSERS[path.rsplit(b"/", 1)[1]].FromString(data) == expected


def test_messages_are_split_at_their_length_prefixes():
    buffer = bytearray(frame_message(b"one") + frame_message(b"") + frame_message(b"three")[:4])
    assert split_messages(buffer) == [b"one", b""]
    buffer += frame_message(b"three")[4:]
    assert split_messages(buffer) == [b"three"] and buffer == bytearray()


@pytest.mark.parametrize(
    ("headers", "http_status", "label"),
    [
        ([(b"grpc-status", b"0"), (b"grpc-message", b"")], b"200", None),
        (
            [(b"grpc-status", b"3"), (b"grpc-message", b"etcdserver: bad%20%E2%9C%93%")],
            b"200",
            "INVALID_ARGUMENT: etcdserver: bad ✓%",
        ),
        (
            [(b":status", b"200"), (b"grpc-status", b"14"), (b"grpc-message", b"etcdserver: no leader")],
            None,
            "UNAVAILABLE: etcdserver: no leader",
        ),
        ([(b"grpc-status", b"99")], b"200", "CODE_99: "),
        ([(b":status", b"404")], None, "UNIMPLEMENTED: unexpected HTTP status 404"),
        ([], b"200", "INTERNAL: server closed the stream without a grpc-status"),
    ],
)
def test_trailers_give_the_report_label(headers, http_status, label):
    assert trailers_error(headers, http_status) == label
