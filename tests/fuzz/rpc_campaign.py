"""An RPC fuzz campaign against a live member, with requests built by hypothesis from the protobuf descriptors.

Every method of every service the client port serves (KV, Watch, Lease, Cluster, Maintenance, Auth, Lock,
Election, Health: unary, server streaming and bidirectional) gets messages whose fields are drawn from their
descriptors: enums in and out of range, integers at their edges (negative and huge ids, revisions, TTLs),
random bytes and text, keys from a small shared key space (so writes collide), txns nested in txns (a few
levels, and sometimes dozens, past the decoder's limit), plus bodies that are mutated or pure garbage.

What a campaign establishes (``Report``):
- crashes: the member process exited;
- hangs: a call that must answer at once (every unary method but Lock and Campaign) did not answer within
  CALL_DEADLINE, or the canary (a write through the log and a read, every CANARY_EVERY requests) did not;
- handler failures: log lines of an unexpected exception in a handler or an entry apply could not apply
  (each is a bug to fix, even though the member survived it);
- the state after a kill -9 and a restart: a Range of every key at the revision read before the kill
  equals the one after, the active alarms are the same, and every acknowledged Put is found at the
  revision its reply gave (unless compacted away since).

Calls run concurrently (at most IN_FLIGHT at once) on one connection; the run is reproducible from its seed
up to the interleaving of those calls.
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.pb.grpc.health.v1 import health_pb2
from etcdx.pb.v3electionpb import v3election_pb2
from etcdx.pb.v3lockpb import v3lock_pb2

CALL_DEADLINE = 10.0  # a method that must answer at once and has not by then hangs
WAITING_DEADLINE = 0.5  # Lock, Campaign and every stream: may wait by design; cut off after this
CANARY_DEADLINE = 10.0
CANARY_EVERY = 500
IN_FLIGHT = 48
BATCH = 8
IMPLEMENTED_SHARES = 8
KEYS = [b"fz/%d" % i for i in range(8)] + [b"fz/", b"\x00", b"fz/lock", b"fz/election"]
WAITING_METHODS = {"/v3lockpb.Lock/Lock", "/v3electionpb.Election/Campaign"}
LOG_FINDINGS = re.compile(r'"msg":"(handler failed|failed to apply request)"')
F = FieldDescriptor


@dataclass(frozen=True)
class Method:
    path: str
    request: Descriptor
    client_streaming: bool
    server_streaming: bool

    @property
    def waits(self) -> bool:
        """May wait past any deadline by design (a lock held, a leader elected, a stream left open)."""
        return self.client_streaming or self.server_streaming or self.path in WAITING_METHODS


def all_methods() -> list[Method]:
    methods = []
    for module in (rpc_pb2, v3lock_pb2, v3election_pb2, health_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                path = f"/{service.full_name}/{m.name}"
                methods.append(Method(path, m.input_type, m.client_streaming, m.server_streaming))
    return methods


# -- strategies from descriptors ---------------------------------------------------------------------


def _ints(low: int, high: int, edges: list[int]) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(edges), st.integers(-3, 40), st.integers(low, high)).filter(
        lambda n: low <= n <= high
    )


_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)
_SCALARS: dict[int, st.SearchStrategy] = {
    F.TYPE_INT32: _ints(*_I32, [0, 1, -1, *_I32]),
    F.TYPE_SINT32: _ints(*_I32, [0, 1, -1, *_I32]),
    F.TYPE_SFIXED32: _ints(*_I32, [0, 1, -1, *_I32]),
    F.TYPE_INT64: _ints(*_I64, [0, 1, -1, 2**62, 9_000_000_001, *_I64]),
    F.TYPE_SINT64: _ints(*_I64, [0, 1, -1, *_I64]),
    F.TYPE_SFIXED64: _ints(*_I64, [0, 1, -1, *_I64]),
    F.TYPE_UINT32: _ints(0, 2**32 - 1, [0, 1, 2**31, 2**32 - 1]),
    F.TYPE_FIXED32: _ints(0, 2**32 - 1, [0, 1, 2**32 - 1]),
    F.TYPE_UINT64: _ints(0, 2**64 - 1, [0, 1, 2**63, 2**64 - 1]),
    F.TYPE_FIXED64: _ints(0, 2**64 - 1, [0, 1, 2**64 - 1]),
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_STRING: st.text(max_size=16),
    F.TYPE_DOUBLE: st.floats(allow_nan=True),
    F.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
    F.TYPE_BYTES: st.one_of(
        st.sampled_from(KEYS), st.binary(max_size=24), st.binary(min_size=256, max_size=4096), st.just(b"")
    ),
}


def _enum(field: FieldDescriptor) -> st.SearchStrategy[int]:
    known = [v.number for v in field.enum_type.values]
    outside = [min(known) - 1, max(known) + 1, max(known) + 7, -(2**31), 2**31 - 1]
    return st.one_of(st.sampled_from(known), st.sampled_from(outside), st.integers(*_I32))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy:
    if field.type == F.TYPE_ENUM:
        return _enum(field)
    return _SCALARS[field.type]


def _deep_txn(levels: int) -> rpc_pb2.TxnRequest:
    """``levels`` txns nested in one another, a put at the bottom (around what the decoders accept)."""
    top = rpc_pb2.TxnRequest()
    inner = top
    for _ in range(levels - 1):
        inner = inner.success.add().request_txn
    inner.success.add().request_put.key = KEYS[0]
    return top


@st.composite
def messages(draw, descriptor: Descriptor, depth: int = 3) -> Message:
    """A message of ``descriptor`` with a random subset of its fields set (a oneof gets at most one)."""
    if descriptor.full_name == "etcdserverpb.TxnRequest" and draw(st.integers(0, 30)) == 0:
        return _deep_txn(draw(st.integers(20, 60)))
    if descriptor.full_name == "etcdserverpb.PutRequest" and draw(st.booleans()):
        # Half the puts are plain ones, so that many are acknowledged and checked after the restart.
        return rpc_pb2.PutRequest(key=draw(st.sampled_from(KEYS)), value=draw(st.binary(max_size=64)))
    message = GetMessageClass(descriptor)()
    for oneof in descriptor.oneofs:
        chosen = draw(st.sampled_from([None, *oneof.fields]))
        if chosen is not None:
            _set(draw, message, chosen, depth)
    for f in descriptor.fields:
        if f.containing_oneof is None and draw(st.booleans()):
            _set(draw, message, f, depth)
    return message


def _set(draw, message: Message, f: FieldDescriptor, depth: int) -> None:
    is_message = f.type == F.TYPE_MESSAGE
    if is_message and depth <= 0:
        if not f.is_repeated:
            getattr(message, f.name).SetInParent()
        return
    if f.is_repeated:
        count = draw(st.integers(0, 3))
        target = getattr(message, f.name)
        for _ in range(count):
            if is_message:
                target.add().CopyFrom(draw(messages(f.message_type, depth - 1)))
            else:
                target.append(draw(_scalar(f)))
    elif is_message:
        getattr(message, f.name).CopyFrom(draw(messages(f.message_type, depth - 1)))
    else:
        setattr(message, f.name, draw(_scalar(f)))


@st.composite
def bodies(draw, method: Method) -> bytes:
    """A request body: mostly a serialized message, sometimes one with bytes changed, or garbage."""
    kind = draw(st.sampled_from(["message"] * 8 + ["mutated", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=64))
    data = draw(messages(method.request)).SerializeToString()
    if kind == "mutated" and data:
        at = draw(st.integers(0, len(data) - 1))
        change = draw(st.sampled_from(["flip", "cut", "insert"]))
        if change == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif change == "cut":
            data = data[:at]
        else:
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return data


@st.composite
def calls(draw, methods: list[Method]) -> tuple[Method, list[bytes]]:
    """One call: a method (``methods`` may repeat one to weight it) and its request messages."""
    method = draw(st.sampled_from(methods))
    count = draw(st.integers(1, 4)) if method.client_streaming else 1
    return method, [draw(bodies(method)) for _ in range(count)]


# -- running a campaign -------------------------------------------------------------------------------


@dataclass
class Report:
    requests: int = 0
    calls: int = 0
    seconds: float = 0.0
    crashes: int = 0
    hangs: list[str] = field(default_factory=list)
    log_findings: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    by_method: Counter = field(default_factory=Counter)  # (path, status name) -> calls
    acknowledged_puts: int = 0
    puts_checked: int = 0
    state_mismatches: list[str] = field(default_factory=list)

    @property
    def methods_called(self) -> set[str]:
        return {path for path, _ in self.by_method}

    def summary(self) -> str:
        codes = ", ".join(f"{code}={n}" for code, n in self.statuses.most_common())
        return (
            f"{self.requests} requests in {self.calls} calls to {len(self.methods_called)} methods, "
            f"{self.seconds:.1f} s: {self.crashes} crashes, "
            f"{len(self.hangs)} hangs, {len(self.log_findings)} handler/apply failures logged, "
            f"{len(self.state_mismatches)} state mismatches after restart "
            f"({self.puts_checked} of {self.acknowledged_puts} acknowledged puts checked); statuses: {codes}"
        )


class Campaign:
    """Sends generated calls to ``server`` (a tests.support.procs.ServerProcess) and records what happened."""

    def __init__(self, server) -> None:
        self.server = server
        self.report = Report()
        self.methods = all_methods()
        self.weighted: list[Method] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)
        self._streams = concurrent.futures.ThreadPoolExecutor(max_workers=16)
        self._puts: list[tuple[bytes, bytes | None, int]] = []
        self._since_canary = 0

    def run(self, requests: int, seed_value: int) -> Report:
        started = time.monotonic()
        examples = max(1, (requests - len(self.methods)) // BATCH)
        channel = grpc.insecure_channel(
            self.server.endpoint,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        try:
            self._weigh(channel)

            @seed(seed_value)
            @settings(
                max_examples=examples,
                phases=[Phase.generate],
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(st.lists(calls(self.weighted), min_size=BATCH, max_size=BATCH))
            def send_batch(batch):
                if self.report.crashes:
                    return
                for method, messages_ in batch:
                    self._start(channel, method, messages_)
                self._since_canary += len(batch)
                if self._since_canary >= CANARY_EVERY:
                    self._since_canary = 0
                    self._check_alive(channel)

            send_batch()
            self._drain()
            self._check_alive(channel)
        finally:
            self._streams.shutdown(wait=True, cancel_futures=False)
            channel.close()
        self.report.seconds = time.monotonic() - started
        self.report.log_findings = [line for line in _read(self.server.log_path) if LOG_FINDINGS.search(line)]
        return self.report

    def _weigh(self, channel: grpc.Channel) -> None:
        """Calls every unary method once with an empty request (counted like the others). Then every method
        is drawn: one the member does not implement (it answered UNIMPLEMENTED) gets one share, the others
        IMPLEMENTED_SHARES each."""
        for method in self.methods:
            shares = IMPLEMENTED_SHARES
            if not (method.client_streaming or method.server_streaming):
                code = grpc.StatusCode.OK
                with self._lock:
                    self.report.calls += 1
                    self.report.requests += 1
                try:
                    channel.unary_unary(method.path)(b"", timeout=WAITING_DEADLINE if method.waits else CALL_DEADLINE)
                except grpc.RpcError as e:
                    code = e.code()
                self._record(method, code, b"", 0.0)
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    shares = 1
            self.weighted.extend([method] * shares)

    # -- calls ------------------------------------------------------------------------------------

    def _start(self, channel: grpc.Channel, method: Method, messages_: list[bytes]) -> None:
        self._slots.acquire()
        with self._lock:
            self.report.calls += 1
            self.report.requests += len(messages_)
        deadline = WAITING_DEADLINE if method.waits else CALL_DEADLINE
        if method.client_streaming or method.server_streaming:
            self._streams.submit(self._stream, channel, method, messages_, deadline)
            return
        started = time.monotonic()
        future = channel.unary_unary(method.path).future(messages_[0], timeout=deadline)
        future.add_done_callback(lambda f: self._unary_done(method, messages_[0], f, started))

    def _unary_done(self, method: Method, body: bytes, future: grpc.Future, started: float) -> None:
        try:
            code = future.code()
            if code == grpc.StatusCode.OK and method.path == "/etcdserverpb.KV/Put":
                self._acknowledged_put(body, future.result())
            self._record(method, code, body, time.monotonic() - started)
        finally:
            self._slots.release()

    def _stream(self, channel: grpc.Channel, method: Method, messages_: list[bytes], deadline: float) -> None:
        code = grpc.StatusCode.OK
        try:
            if method.client_streaming:
                responses = channel.stream_stream(method.path)(iter(messages_), timeout=deadline)
            else:
                responses = channel.unary_stream(method.path)(messages_[0], timeout=deadline)
            for _ in responses:
                pass
        except grpc.RpcError as e:
            code = e.code()
        finally:
            self._slots.release()
        self._record(method, code, messages_[0], 0.0)

    def _record(self, method: Method, code: grpc.StatusCode, body: bytes, seconds: float) -> None:
        with self._lock:
            self.report.statuses[code.name] += 1
            self.report.by_method[method.path, code.name] += 1
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and not method.waits:
                self.report.hangs.append(f"{method.path} {body.hex()[:200]} after {seconds:.1f} s")
            if code == grpc.StatusCode.UNAVAILABLE and self.server.proc.poll() is not None:
                self.report.crashes = 1

    def _acknowledged_put(self, body: bytes, reply: bytes) -> None:
        """Remembers (key, value, revision) of an acknowledged Put; value None for ignore_value (the key kept
        the value it had, which this campaign does not track)."""
        request = rpc_pb2.PutRequest.FromString(body)
        revision = rpc_pb2.PutResponse.FromString(reply).header.revision
        value = None if request.ignore_value else request.value
        with self._lock:
            self._puts.append((request.key, value, revision))

    def _drain(self) -> None:
        for _ in range(IN_FLIGHT):
            self._slots.acquire()
        for _ in range(IN_FLIGHT):
            self._slots.release()

    def _check_alive(self, channel: grpc.Channel) -> None:
        """The canary: a write through the log (an alarm disarm, which also lifts any alarm the fuzz raised,
        so writes keep being accepted) and a read, each within CANARY_DEADLINE; else a crash or a hang."""
        if self.server.proc.poll() is not None:
            self.report.crashes = 1
            return
        maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        try:
            listed = maintenance.Alarm(rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET), timeout=CANARY_DEADLINE)
            for alarm in listed.alarms:
                disarm = rpc_pb2.AlarmRequest(
                    action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=alarm.memberID, alarm=alarm.alarm
                )
                maintenance.Alarm(disarm, timeout=CANARY_DEADLINE)
            disarm = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=1, alarm=rpc_pb2.NOSPACE)
            maintenance.Alarm(disarm, timeout=CANARY_DEADLINE)
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=KEYS[0]), timeout=CANARY_DEADLINE)
        except grpc.RpcError as e:
            if self.server.proc.poll() is not None:
                self.report.crashes = 1
            else:
                self.report.hangs.append(f"canary: {e.code().name} {e.details()}")

    # -- the state across a restart ---------------------------------------------------------------

    def check_restart(self) -> None:
        """kill -9 and restart: every key at the last revision, the alarms and the acknowledged puts are kept."""
        before, revision, alarms = self._state()
        self.server.kill9()
        self.server.start()
        after, _, alarms_after = self._state(revision)
        if after != before:
            self.report.state_mismatches.append(f"range at {revision}: {len(before)} kvs before, {len(after)} after")
        if alarms_after != alarms:
            self.report.state_mismatches.append(f"alarms {alarms} before, {alarms_after} after")
        self.report.acknowledged_puts = len(self._puts)
        with grpc.insecure_channel(self.server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            for key, value, put_revision in self._puts:
                try:
                    got = kv.Range(rpc_pb2.RangeRequest(key=key, revision=put_revision), timeout=CALL_DEADLINE)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.OUT_OF_RANGE and "compacted" in e.details():
                        continue
                    raise
                self.report.puts_checked += 1
                stored = [(kv.value, kv.mod_revision) for kv in got.kvs]
                found = [(v if value is not None else None, r) for v, r in stored]
                if found != [(value, put_revision)]:
                    self.report.state_mismatches.append(f"put {key!r}={value!r} at {put_revision}: found {stored}")

    def _state(self, revision: int = 0) -> tuple[list, int, list]:
        with grpc.insecure_channel(self.server.endpoint, options=[("grpc.max_receive_message_length", -1)]) as channel:
            everything = rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00", revision=revision)
            response = rpc_pb2_grpc.KVStub(channel).Range(everything, timeout=CALL_DEADLINE)
            listed = rpc_pb2_grpc.MaintenanceStub(channel).Alarm(rpc_pb2.AlarmRequest(), timeout=CALL_DEADLINE)
        kvs = [kv.SerializeToString() for kv in response.kvs]
        return kvs, response.header.revision, sorted((a.memberID, a.alarm) for a in listed.alarms)


def _read(path: str) -> list[str]:
    with open(path, errors="replace") as f:
        return f.readlines()
