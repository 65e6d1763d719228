"""kill -9 durability: every acknowledged write survives a crash, and nothing else changes.

One etcdx process and one data dir for a whole test: grpcio writers (threads, so group commit batches
them) stream writes; at a seeded-random moment the test kill -9s the server, restarts it on the same
data dir (so the WAL to replay grows from kill point to kill point) and compares a full Range with
what the clients were told. A write whose call was in flight at the kill has an unknown outcome: it
may be present or absent, but not half applied and not with any other value.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import etcdx_process

KILL_POINTS = 24
WRITERS = 4
CALL_TIMEOUT = 10.0
ROUND_TIMEOUT = 30.0
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]
ERR_COMPACTED = "etcdserver: mvcc: required revision has been compacted"


@dataclass
class Op:
    """One client write: a put (value set) or a delete (value None) of ``key``."""

    key: bytes
    value: bytes | None
    revision: int = 0  # the acknowledged header.revision; 0 while in flight


@dataclass
class Writer:
    """A client thread's record: its acknowledged writes in order, and the one in flight when it stopped."""

    acked: list[Op] = field(default_factory=list)
    in_flight: Op | None = None
    unexpected: list[str] = field(default_factory=list)  # failures while the server was meant to be up


class Round:
    """Writer threads against one server lifetime; ``killed`` marks the moment errors become expected."""

    def __init__(self, endpoint: str, number: int, workload, writers: int = WRITERS) -> None:
        self.endpoint = endpoint
        self.number = number
        self.workload = workload
        self.killed = threading.Event()
        self.writers = [Writer() for _ in range(writers)]
        self._threads = [
            threading.Thread(target=self._run, args=(i, w), daemon=True) for i, w in enumerate(self.writers)
        ]

    def __enter__(self) -> Round:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.killed.set()
        for t in self._threads:
            t.join(timeout=CALL_TIMEOUT + 5)
        assert not any(t.is_alive() for t in self._threads), "a writer did not stop"

    @property
    def acked_count(self) -> int:
        return sum(len(w.acked) for w in self.writers)

    def _run(self, index: int, writer: Writer) -> None:
        with grpc.insecure_channel(self.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            for op in self.workload(self.number, index, writer):
                if self.killed.is_set():
                    return
                writer.in_flight = op
                try:
                    if op.value is None:
                        response = kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=op.key), timeout=CALL_TIMEOUT)
                        if response.deleted != 1:
                            writer.unexpected.append(f"delete of {op.key!r} deleted {response.deleted}")
                    else:
                        response = kv.Put(rpc_pb2.PutRequest(key=op.key, value=op.value), timeout=CALL_TIMEOUT)
                except grpc.RpcError as e:
                    if not self.killed.is_set():
                        writer.unexpected.append(f"{op.key!r}: {e.code()} {e.details()}")
                    return
                op.revision = response.header.revision
                writer.acked.append(op)
                writer.in_flight = None


def put_only(round_number: int, writer_index: int, writer: Writer):
    """Distinct keys, each put once: the revision counts the applied puts."""
    for seq in range(100_000):
        key = b"r%03d/w%d/%06d" % (round_number, writer_index, seq)
        yield Op(key, b"value-of-" + key)


def puts_and_deletes(round_number: int, writer_index: int, writer: Writer):
    """Fresh puts, and deletes of this writer's own acknowledged, not yet deleted keys (each deletes exactly one)."""
    rng = random.Random(round_number * 1000 + writer_index)
    live: list[bytes] = []
    seq = 0
    while seq < 100_000:
        # The generator resumes only once its previous op was acknowledged, so acked[-1] is that op.
        if writer.acked and writer.acked[-1].value is not None:
            live.append(writer.acked[-1].key)
        if live and rng.random() < 0.45:
            yield Op(live.pop(rng.randrange(len(live))), None)
        else:
            seq += 1
            key = b"d%03d/w%d/%06d" % (round_number, writer_index, seq)
            yield Op(key, b"value-of-" + key)


def kill_at_random_moment(server, rnd: Round, rng: random.Random) -> None:
    """Kills after a random number of acknowledged writes (20-300), or after a random short delay."""
    deadline = time.monotonic() + ROUND_TIMEOUT
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        target = rng.randint(20, 300)
        while rnd.acked_count < target and time.monotonic() < deadline:
            time.sleep(0.002)
        assert rnd.acked_count >= target, f"only {rnd.acked_count} writes acknowledged in {ROUND_TIMEOUT}s"
    rnd.killed.set()
    server.kill9()


def full_range(kv) -> rpc_pb2.RangeResponse:
    return kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=CALL_TIMEOUT)


@dataclass
class Figures:
    kill_points: int = 0
    acked_checked: int = 0
    in_flight_applied: int = 0  # in-flight writes found applied after the restart (put present, delete gone)
    in_flight_not_applied: int = 0


class Model:
    """What the store must hold: key -> (value, mod_revision), from acknowledged writes and resolved unknowns."""

    def __init__(self) -> None:
        self.keys: dict[bytes, tuple[bytes, int]] = {}
        self.applied_writes = 0

    def apply_acked(self, op: Op) -> None:
        if op.value is None:
            del self.keys[op.key]
        else:
            self.keys[op.key] = (op.value, op.revision)
        self.applied_writes += 1

    def resolve_in_flight(self, op: Op, stored: dict[bytes, rpc_pb2.KeyValue], figures: Figures) -> None:
        """Decides from the recovered store whether the in-flight ``op`` was applied; checks it was applied whole."""
        kv = stored.get(op.key)
        if op.value is None:
            applied = kv is None
            if applied:
                del self.keys[op.key]
        else:
            applied = kv is not None
            if applied:
                assert kv.value == op.value, f"in-flight put of {op.key!r} recovered with value {kv.value!r}"
                self.keys[op.key] = (kv.value, kv.mod_revision)
        self.applied_writes += applied
        figures.in_flight_applied += applied
        figures.in_flight_not_applied += not applied

    def check(self, response: rpc_pb2.RangeResponse, initial_revision: int) -> None:
        stored = {kv.key: (kv.value, kv.mod_revision) for kv in response.kvs}
        missing = sorted(set(self.keys) - set(stored))
        extra = sorted(set(stored) - set(self.keys))
        assert not missing, f"{len(missing)} acknowledged keys lost, first {missing[:3]}"
        assert not extra, f"{len(extra)} keys nobody wrote (or acknowledged deleted), first {extra[:3]}"
        changed = [k for k in self.keys if stored[k] != self.keys[k]]
        assert not changed, f"{len(changed)} keys differ, first {[(k, stored[k], self.keys[k]) for k in changed[:3]]}"
        # Every applied put and delete made exactly one revision, and nothing else made any.
        assert response.header.revision == initial_revision + self.applied_writes


def run_kill_points(server, workload, seeds, after_restart=None) -> Figures:
    """Crashes ``server`` once per seed under ``workload`` and checks the recovered store each time."""
    model = Model()
    figures = Figures()
    with grpc.insecure_channel(server.endpoint, options=CHANNEL_OPTIONS) as channel:
        initial_revision = full_range(rpc_pb2_grpc.KVStub(channel)).header.revision
    for number, seed in enumerate(seeds):
        rng = random.Random(seed)
        with Round(server.endpoint, number, workload) as rnd:
            kill_at_random_moment(server, rnd, rng)
        assert not [u for w in rnd.writers for u in w.unexpected], rnd.writers
        server.start()
        with grpc.insecure_channel(server.endpoint, options=CHANNEL_OPTIONS) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            response = full_range(kv)
            stored = {item.key: item for item in response.kvs}
            for writer in rnd.writers:
                for op in writer.acked:
                    model.apply_acked(op)
                figures.acked_checked += len(writer.acked)
                if writer.in_flight is not None:
                    model.resolve_in_flight(writer.in_flight, stored, figures)
            model.check(response, initial_revision)
            if after_restart is not None:
                after_restart(kv)
        figures.kill_points += 1
    with grpc.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        revision = kv.Put(rpc_pb2.PutRequest(key=b"after-crashes", value=b"ok"), timeout=CALL_TIMEOUT).header.revision
        assert revision == initial_revision + model.applied_writes + 1
        got = kv.Range(rpc_pb2.RangeRequest(key=b"after-crashes"), timeout=CALL_TIMEOUT).kvs
        assert [(k.value, k.mod_revision) for k in got] == [(b"ok", revision)]
    return figures


class CompactionLog:
    """Compacts at recently acknowledged revisions from writer 0's thread, and checks the bounds after a restart.

    After recovery the compacted revision is at least the highest acknowledged compaction and at most the
    highest one attempted (an in-flight compaction may or may not have been applied).
    """

    def __init__(self) -> None:
        self.acked_revision = 0
        self.attempted_revision = 0
        self.acked_count = 0
        self._server = None

    def wrap(self, server, workload):
        self._server = server

        def workload_with_compactions(round_number: int, writer_index: int, writer: Writer):
            for count, op in enumerate(workload(round_number, writer_index, writer)):
                if writer_index == 0 and count % 15 == 14 and writer.acked:
                    self._compact(writer.acked[-1].revision - 1, writer)
                yield op

        return workload_with_compactions

    def _compact(self, revision: int, writer: Writer) -> None:
        if revision <= self.attempted_revision:
            return
        self.attempted_revision = revision
        with grpc.insecure_channel(self._server.endpoint) as channel:
            try:
                rpc_pb2_grpc.KVStub(channel).Compact(
                    rpc_pb2.CompactionRequest(revision=revision, physical=True), timeout=CALL_TIMEOUT
                )
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:  # only the kill may fail it
                    writer.unexpected.append(f"compact {revision}: {e.code()} {e.details()}")
                return
        self.acked_revision = revision
        self.acked_count += 1

    def check(self, kv) -> None:
        if self.acked_revision > 1:
            with pytest.raises(grpc.RpcError) as failure:
                kv.Range(
                    rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", revision=self.acked_revision - 1),
                    timeout=CALL_TIMEOUT,
                )
            assert (failure.value.code(), failure.value.details()) == (grpc.StatusCode.OUT_OF_RANGE, ERR_COMPACTED)
        if self.attempted_revision:
            kv.Range(
                rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", revision=self.attempted_revision), timeout=CALL_TIMEOUT
            )


@pytest.fixture
def crash_server(tmp_path):
    with etcdx_process(tmp_path).start() as server:
        yield server


def test_acknowledged_puts_survive_kill9_at_every_kill_point(crash_server):
    figures = run_kill_points(crash_server, put_only, seeds=range(KILL_POINTS))
    print(f"put-only: {figures}")
    assert figures.kill_points == KILL_POINTS
    assert figures.acked_checked >= KILL_POINTS * 20 * 3 // 4  # most kill points wait for 20-300 acks


def test_puts_deletes_and_compactions_survive_kill9(crash_server):
    """Deletes and compactions race the kill: acknowledged deletes stay deleted, acknowledged compactions hold."""
    compactions = CompactionLog()
    figures = run_kill_points(
        crash_server,
        compactions.wrap(crash_server, puts_and_deletes),
        seeds=range(100, 112),
        after_restart=compactions.check,
    )
    print(f"puts+deletes+compactions: {figures}, compactions acknowledged {compactions.acked_count}")
    assert figures.kill_points == 12
    assert compactions.acked_count > 0
