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
from etcdx.pb.mvccpb import kv_pb2


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
    """Stands in for the grpcio stubs: keeps the request messages a scenario sends; answers with ``answers``
    (method name -> response message), an empty response by default."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []
        self.answers = {"Put": rpc_pb2.PutResponse(), "Range": rpc_pb2.RangeResponse(), "Txn": rpc_pb2.TxnResponse()}
        self.kv = SimpleNamespace(Put=self._method("Put"), Range=self._method("Range"), Txn=self._method("Txn"))

    def _method(self, name: str):
        async def method(message):
            self.sent.append((name, message))
            return self.answers[name]

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
        ("txn-cas", {"key_space_size": 3}),
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


def _cas_answer(succeeded: bool, revision: int, mod_revision: int) -> rpc_pb2.TxnResponse:
    """A Txn answer: succeeded at ``revision``, or failed with the else-Range reading ``mod_revision`` (0: no key)."""
    answer = rpc_pb2.TxnResponse(succeeded=succeeded, header=rpc_pb2.ResponseHeader(revision=revision))
    if not succeeded:
        kvs = [kv_pb2.KeyValue(key=b"k", mod_revision=mod_revision)] if mod_revision else []
        answer.responses.add().response_range.CopyFrom(rpc_pb2.RangeResponse(kvs=kvs))
    return answer


def test_txn_cas_compares_the_revision_each_answer_gave_in_both_clients():
    opts = options(key_space_size=2)
    recorder = Recorder()
    grpcio_request = scenarios.SCENARIOS["txn-cas"](opts, recorder, random.Random(7), offset=5)
    native_request = native_requests.SCENARIOS["txn-cas"](opts, random.Random(7), offset=5)
    key0, key1 = scenarios.cas_key(5, 0), scenarios.cas_key(5, 1)
    # (the key and mod_revision the Txn must compare, the answer, the label it gives); keys round robin
    steps = [
        (key0, 0, _cas_answer(False, 40, 17), scenarios.CAS_FAILED),  # key 0 existed at 17: learnt
        (key1, 0, _cas_answer(True, 41, 0), scenarios.CAS_SUCCEEDED),  # key 1 was absent: put at 41
        (key0, 17, _cas_answer(True, 42, 0), scenarios.CAS_SUCCEEDED),
        (key1, 41, _cas_answer(False, 50, 0), scenarios.CAS_FAILED),  # key 1 deleted meanwhile
        (key0, 42, _cas_answer(True, 51, 0), scenarios.CAS_SUCCEEDED),
        (key1, 0, _cas_answer(True, 52, 0), scenarios.CAS_SUCCEEDED),
    ]
    for key, mod_revision, answer, label in steps:
        recorder.answers["Txn"] = answer
        assert asyncio.run(grpcio_request()) == label
        path, data = native_request()
        _, sent = recorder.sent[-1]
        assert path == native_requests.TXN and rpc_pb2.TxnRequest.FromString(data) == sent
        assert native_request.observe(answer.SerializeToString()) == label
        assert (sent.compare[0].key, sent.compare[0].mod_revision) == (key, mod_revision)
        assert sent.compare[0].target == rpc_pb2.Compare.MOD and sent.compare[0].result == rpc_pb2.Compare.EQUAL
        assert sent.success[0].request_put.key == sent.failure[0].request_range.key == key


def test_range_reports_the_size_of_its_first_reply_only():
    page = rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(key=b"%d" % n) for n in range(7)])
    native_request = native_requests.SCENARIOS["range"](options(prefix=True, limit=7), random.Random(1), offset=0)
    native_request()
    assert native_request.observe(page.SerializeToString()) == "first reply: 7 kvs"
    assert getattr(native_request, "observe", None) is None  # later replies are not decoded
    recorder = Recorder()
    recorder.answers["Range"] = page
    grpcio_request = scenarios.SCENARIOS["range"](options(prefix=True, limit=7), recorder, random.Random(1), offset=0)
    assert [asyncio.run(grpcio_request()) for _ in range(3)] == ["first reply: 7 kvs", None, None]


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
