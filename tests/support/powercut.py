"""Power-cut campaigns: an etcdx member on a LazyFS mount, a write load, a cut, and a check after each restart.

One cycle: mount LazyFS over the store, start the member on it (through tests.support.powercut_member, with a
small WAL segment size), check it against the model of what clients were told, run a seeded load of puts,
txns, deletes and compactions from several client threads for a random time, kill -9 the member, cut the power
(the filesystem drops what was not fsynced, or keeps a random subset of it), repeat. After the last cut the
member is started and checked once more.

The model. Each client thread owns its keys ``pc/<thread>/<n>`` and runs one request at a time, so after a cut
its keys must equal the state after its last acknowledged request, or after the one request it had in flight
(sent, never answered), which may or may not have been applied. Checks after every restart:
- the member starts (a store that does not open is a failure);
- every key under ``pc/`` belongs to a client and holds a value that client wrote (nothing never sent appears);
- each thread's keys match its last acknowledged state or that state plus its in-flight request (txns whole);
- every put and delete acknowledged since the previous restart is in the MVCC history at the revision it was
  acknowledged with (unless compacted);
- the current revision is at least every revision a client was answered with, and a Range below the highest
  acknowledged compaction revision is refused as compacted.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.lazyfs import LazyFSMount
from tests.support.procs import ServerProcess, _cluster_flags, free_ports

KEYS_PER_THREAD = 12
WAL_SEGMENT_BYTES = 64 * 1024
RPC_TIMEOUT = 10.0
MAX_REPORTED = 5  # history problems listed per cut (the rest are counted)


@dataclass
class CampaignResult:
    cuts: int = 0
    acknowledged_writes: int = 0  # write requests answered OK (puts, deletes, txns, compactions)
    history_checks: int = 0  # acknowledged puts/deletes looked up at their revision after a restart
    key_checks: int = 0  # keys compared with the model after a restart
    wal_segments: int = 0  # WAL segments in the member's directory at the end
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"cuts={self.cuts} acknowledged_writes={self.acknowledged_writes} history_checks={self.history_checks}"
            f" key_checks={self.key_checks} wal_segments={self.wal_segments} failures={len(self.failures)}"
            f" seconds={self.seconds:.1f}"
        )


@dataclass
class _Client:
    """One load thread's view: what it was told, and the one request it may have had in flight."""

    number: int
    state: dict[bytes, bytes] = field(default_factory=dict)  # acknowledged values of its keys
    in_flight: list[tuple[str, bytes, bytes]] | None = None  # ops of the unanswered request
    in_flight_compaction: int = 0
    history: list[tuple[bytes, bytes | None, int]] = field(default_factory=list)  # (key, value or None, revision)
    acknowledged: int = 0
    seq: int = 0

    def key(self, n: int) -> bytes:
        return f"pc/{self.number}/{n:02d}".encode()


def _apply(state: dict[bytes, bytes], ops: list[tuple[str, bytes, bytes]]) -> dict[bytes, bytes]:
    result = dict(state)
    for kind, key, value in ops:
        if kind == "put":
            result[key] = value
        else:
            result.pop(key, None)
    return result


class _Load:
    """Client threads writing until the member dies (or ``stop``); each stops at its first failed request."""

    def __init__(self, endpoint: str, clients: list[_Client], seed: int, start_revision: int) -> None:
        self.endpoint = endpoint
        self.start_revision = start_revision  # compactions stay below it: this cycle's writes stay in the history
        self.clients = clients
        self.seed = seed
        self.max_revision = 0
        self.max_compaction = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in clients]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop_and_join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=RPC_TIMEOUT * 2)

    def _seen(self, revision: int, compaction: int = 0) -> None:
        with self._lock:
            self.max_revision = max(self.max_revision, revision)
            self.max_compaction = max(self.max_compaction, compaction)

    def _run(self, client: _Client) -> None:
        rng = random.Random(f"{self.seed}/{client.number}")
        with grpc.insecure_channel(self.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            while not self._stop.is_set():
                try:
                    self._one(kv, client, rng)
                except grpc.RpcError:
                    return  # the member is gone: the request stays in flight

    def _value(self, client: _Client, rng: random.Random) -> bytes:
        client.seq += 1
        return f"{client.number}.{client.seq}.".encode() + b"v" * rng.choice((0, 10, 200, 1500))

    def _one(self, kv: rpc_pb2_grpc.KVStub, client: _Client, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.02 and self.start_revision > 10:
            revision = rng.randint(max(2, self.start_revision - 500), self.start_revision)
            client.in_flight, client.in_flight_compaction = [], revision
            try:
                kv.Compact(rpc_pb2.CompactionRequest(revision=revision), timeout=RPC_TIMEOUT)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.OUT_OF_RANGE:  # "required revision has been compacted"
                    raise
            client.in_flight, client.in_flight_compaction = None, 0
            client.acknowledged += 1
            self._seen(0, revision)
            return
        if roll < 0.55:
            ops = [("put", client.key(rng.randrange(KEYS_PER_THREAD)), self._value(client, rng))]
        elif roll < 0.75:
            ops = [("delete", client.key(rng.randrange(KEYS_PER_THREAD)), b"")]
        else:
            keys = rng.sample(range(KEYS_PER_THREAD), 3)
            ops = [
                ("put", client.key(keys[0]), self._value(client, rng)),
                ("put", client.key(keys[1]), self._value(client, rng)),
                ("delete", client.key(keys[2]), b""),
            ]
        client.in_flight = ops
        if len(ops) == 1 and ops[0][0] == "put":
            revision = kv.Put(rpc_pb2.PutRequest(key=ops[0][1], value=ops[0][2]), timeout=RPC_TIMEOUT).header.revision
        elif len(ops) == 1:
            revision = kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=ops[0][1]), timeout=RPC_TIMEOUT).header.revision
        else:
            always = rpc_pb2.Compare(key=ops[0][1], target=rpc_pb2.Compare.VERSION, result=rpc_pb2.Compare.GREATER)
            always.version = -1
            request = rpc_pb2.TxnRequest(compare=[always], success=[_op(op) for op in ops])
            response = kv.Txn(request, timeout=RPC_TIMEOUT)
            if not response.succeeded:
                raise AssertionError("txn with an always-true compare did not succeed")
            revision = response.header.revision
        before = client.state
        client.state = _apply(client.state, ops)
        client.in_flight = None
        client.acknowledged += 1
        for kind, key, value in ops:
            # A delete of an absent key does not create a revision: only check deletes that removed something.
            if kind == "put" or key in before:
                client.history.append((key, value if kind == "put" else None, revision))
        self._seen(revision)


def _op(op: tuple[str, bytes, bytes]) -> rpc_pb2.RequestOp:
    kind, key, value = op
    if kind == "put":
        return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))


def _member(workdir: str, mountpoint: str, plant: str | None) -> ServerProcess:
    client_port, peer_port = free_ports(2)
    data_dir = os.path.join(mountpoint, "member.etcdx")
    flags = _cluster_flags("pc", data_dir, client_port, peer_port)
    argv = [sys.executable, "-m", "tests.support.powercut_member", *flags]
    env = {"ETCDX_TEST_WAL_SEGMENT_BYTES": str(WAL_SEGMENT_BYTES), "ETCDX_TEST_PLANT": plant or ""}
    log_path = os.path.join(workdir, "member.log")
    return ServerProcess(argv, data_dir, client_port, peer_port, log_path, env=env)


class _Checker:
    def __init__(self, result: CampaignResult) -> None:
        self.result = result

    def check(self, endpoint: str, clients: list[_Client], load: _Load | None, cut: int) -> tuple[list[str], int]:
        """Compares the restarted member with the model; resolves in-flight requests to what was found.
        Returns the problems found and the member's current revision."""
        problems: list[str] = []
        with grpc.insecure_channel(endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            try:
                found = kv.Range(rpc_pb2.RangeRequest(key=b"pc/", range_end=b"pc0"), timeout=RPC_TIMEOUT)
            except grpc.RpcError as exc:  # e.g. a store that lost pages: the member cannot read what it indexes
                return [f"cut {cut}: the member cannot serve a read: {exc.code().name} {exc.details()}"], 0
            by_client: dict[int, dict[bytes, bytes]] = {c.number: {} for c in clients}
            for item in found.kvs:
                owner = int(item.key.split(b"/")[1])
                if owner not in by_client:
                    problems.append(f"cut {cut}: key {item.key!r} was never written by any client")
                    continue
                by_client[owner][item.key] = item.value
            for client in clients:
                observed = by_client[client.number]
                self.result.key_checks += KEYS_PER_THREAD
                allowed = [client.state]
                if client.in_flight:
                    allowed.append(_apply(client.state, client.in_flight))
                if observed not in allowed:
                    problems.append(f"cut {cut}: client {client.number}: {_diff(observed, allowed)}")
                client.state = observed
                client.in_flight = None
            if load is not None:
                lost = self._check_history(kv, clients, load, cut, found.header.revision)
                problems += lost[:MAX_REPORTED]
                if len(lost) > MAX_REPORTED:
                    problems.append(f"cut {cut}: ... and {len(lost) - MAX_REPORTED} more history problems")
        for client in clients:
            client.history.clear()
            client.in_flight_compaction = 0
        return problems, found.header.revision

    def _check_history(self, kv, clients: list[_Client], load: _Load, cut: int, revision: int) -> list[str]:
        problems = []
        if revision < load.max_revision:
            problems.append(f"cut {cut}: revision {revision} after restart < {load.max_revision} acknowledged")
        compacted = max([load.max_compaction] + [c.in_flight_compaction for c in clients])
        if load.max_compaction > 1:
            try:
                kv.Range(rpc_pb2.RangeRequest(key=b"pc/", revision=load.max_compaction - 1), timeout=RPC_TIMEOUT)
                problems.append(f"cut {cut}: acknowledged compaction at {load.max_compaction} was lost")
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.OUT_OF_RANGE:
                    raise
        for client in clients:
            for key, value, at in client.history:
                if at < compacted:
                    continue
                self.result.history_checks += 1
                try:
                    got = kv.Range(rpc_pb2.RangeRequest(key=key, revision=at), timeout=RPC_TIMEOUT).kvs
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.OUT_OF_RANGE:  # compacted by a compaction in flight
                        continue
                    # e.g. a store that lost pages: the member cannot read a revision it acknowledged
                    problems.append(f"cut {cut}: reading {key!r} at {at} failed: {exc.code().name} {exc.details()}")
                    continue
                if value is None and got:
                    problems.append(f"cut {cut}: delete of {key!r} acknowledged at {at} is not in the history")
                if value is not None and (not got or got[0].value != value or got[0].mod_revision != at):
                    problems.append(f"cut {cut}: put of {key!r} acknowledged at {at} is not in the history")
        return problems


def _diff(observed: dict[bytes, bytes], allowed: list[dict[bytes, bytes]]) -> str:
    expected = allowed[0]
    changed = sorted(k.decode() for k in expected if observed.get(k) != expected[k])
    resurrected = sorted(k.decode() for k in observed if k not in expected)
    return (
        f"keys match neither the acknowledged state nor it plus the request in flight: puts lost or changed at"
        f" {changed}, acknowledged deletes undone at {resurrected}"
    )


def _last_error(log_tail: str) -> str:
    """The exception line of a start-up traceback (or the last line of the log)."""
    lines = [line.strip(" |") for line in log_tail.splitlines() if line.strip(" |")]
    errors = [line for line in lines if re.match(r"[\w.]*(Error|error|Exception)(: |$)", line) or line[:6] == "etcdx:"]
    if errors:
        return errors[-1][:400]
    return f"no answer; last log line: {(lines or ['(none)'])[-1][:300]}"


def run_campaign(
    workdir: str,
    cuts: int,
    *,
    keep_fraction: float = 0.0,
    seed: int = 0,
    plant: str | None = None,
    threads: int = 3,
    load_seconds: tuple[float, float] = (0.3, 1.5),
    stop_at_first_failure: bool = False,
    progress=None,
) -> CampaignResult:
    """Runs ``cuts`` power cuts on a fresh store in ``workdir``; returns the figures and every failure found."""
    result = CampaignResult()
    started = time.monotonic()
    store = os.path.join(workdir, "store")
    mountpoint = os.path.join(workdir, "mnt")
    shutil.rmtree(store, ignore_errors=True)
    rng = random.Random(seed)
    clients = [_Client(n) for n in range(threads)]
    checker = _Checker(result)
    load: _Load | None = None
    for cut in range(cuts + 1):
        mount = LazyFSMount(store, mountpoint, keep_fraction=keep_fraction, seed=rng.randrange(1 << 30))
        mount.start()
        member = _member(workdir, mountpoint, plant)
        try:
            try:
                member.start()
            except RuntimeError as exc:
                result.failures.append(f"cut {cut}: the member did not start: {_last_error(str(exc))}")
                break
            problems, revision = checker.check(member.endpoint, clients, load, cut)
            result.failures += problems
            if (problems and stop_at_first_failure) or cut == cuts:
                member.stop()
                result.wal_segments = len(os.listdir(os.path.join(member.data_dir, "member", "wal")))
                break
            load = _Load(member.endpoint, clients, seed=rng.randrange(1 << 30), start_revision=revision)
            load.start()
            time.sleep(rng.uniform(*load_seconds))
            member.kill9()
            load.stop_and_join()
            result.acknowledged_writes += sum(c.acknowledged for c in clients)
            for client in clients:
                client.acknowledged = 0
            result.cuts += 1
        finally:
            member.stop()
            mount.power_cut()
        if progress is not None:
            progress(result)
    result.seconds = time.monotonic() - started
    return result
