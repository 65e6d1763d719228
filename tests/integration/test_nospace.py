"""NOSPACE and its recovery the way etcd's docs describe it: fill the quota, compact, `etcdctl defrag`,
`etcdctl alarm disarm`, write again; and the member serving through a defragmentation.

The recovery runs the same etcdctl commands against etcdx and real etcd 3.5.1 (with etcdctl 3.5.1 and
3.4) and compares what they print, after replacing what identifies the server (member id, port, the
revision compacted). The recipe services (Lock, Election), reads, deletes and txns are compared as
gRPC (status code, message) pairs; txns are where etcdx differs on purpose (ETCD_DIFFERS below): it
refuses the puts of nested txns, which etcd applies under the alarm, and it serves txns that cannot
add data, which etcd refuses while the backend is at the quota.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import grpc
import pytest

from etcdx.mvcc.backend import DEFRAG_FILE
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.pb.v3electionpb import v3election_pb2 as el
from etcdx.pb.v3electionpb import v3election_pb2_grpc as elg
from etcdx.pb.v3lockpb import v3lock_pb2 as lk
from etcdx.pb.v3lockpb import v3lock_pb2_grpc as lkg
from tests.compat.watch_client import RecordingWatch
from tests.integration.test_etcdctl import CLIENTS, etcdctl
from tests.support.procs import etcd_process, etcdx_process

QUOTA = ("--quota-backend-bytes", str(1024 * 1024))
FILL_VALUE = b"x" * 64 * 1024
NO_SPACE = "etcdserver: mvcc: database space exceeded"
Op = rpc_pb2.RequestOp


def fill_until_nospace(kv: rpc_pb2_grpc.KVStub) -> int:
    """Overwrites one key with 64 KiB values until the quota refuses a put; returns the last revision."""
    revision = 0
    for _ in range(200):
        try:
            revision = kv.Put(rpc_pb2.PutRequest(key=b"fill", value=FILL_VALUE), timeout=10).header.revision
        except grpc.RpcError as full:
            assert (full.code(), full.details()) == (grpc.StatusCode.RESOURCE_EXHAUSTED, NO_SPACE)
            return revision
    raise AssertionError("the quota never refused a put")


def nested_put_txn(key: bytes) -> rpc_pb2.TxnRequest:
    inner = rpc_pb2.TxnRequest(success=[Op(request_put=rpc_pb2.PutRequest(key=key, value=b"v"))])
    return rpc_pb2.TxnRequest(success=[Op(request_txn=rpc_pb2.TxnRequest(success=[Op(request_txn=inner)]))])


def recovery_steps(revision: int) -> list[tuple[str, ...]]:
    return [
        ("put", "foo", "bar"),
        ("alarm", "list"),
        ("lock", "mutex", "echo", "locked"),
        ("elect", "election", "candidate"),
        ("compaction", str(revision)),
        ("defrag",),
        ("put", "foo", "bar"),  # the alarm is still on: defragmenting frees space but does not disarm
        ("alarm", "disarm"),
        ("alarm", "list"),
        ("put", "foo", "bar"),
        ("get", "foo"),
        ("lock", "mutex", "echo", "locked"),
    ]


_SERVER = re.compile(r"(memberID:)\d+|(127\.0\.0\.1:)\d+|(compacted revision )\d+")


def run_recovery(server, binary: str) -> tuple[list[tuple[int, str, str]], int, int]:
    """Fills ``server``'s quota, then runs ``recovery_steps`` with ``binary``; returns the normalised
    (exit code, stdout, error lines) of each step and Status's dbSize before and after the defrag."""
    with grpc.insecure_channel(server.endpoint) as channel:
        kv, maintenance = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.MaintenanceStub(channel)
        revision = fill_until_nospace(kv)
        full_size = maintenance.Status(rpc_pb2.StatusRequest()).dbSize
        outputs = []
        for step in recovery_steps(revision):
            result = etcdctl(server.endpoint, *step, check=False, binary=binary)
            errors = "\n".join(line for line in result.stderr.splitlines() if line.startswith("Error"))
            outputs.append((result.returncode, _SERVER.sub(r"\1\2\3N", result.stdout), errors))
        defragmented_size = maintenance.Status(rpc_pb2.StatusRequest()).dbSize
    return outputs, full_size, defragmented_size


@pytest.mark.slow
@CLIENTS
def test_nospace_recovery_matches_etcd(binary, tmp_path):
    with etcdx_process(tmp_path, extra_args=QUOTA).start() as server:
        actual, full_size, defragmented_size = run_recovery(server, binary)
    with etcd_process(tmp_path, extra_args=QUOTA).start() as server:
        expected, _, _ = run_recovery(server, binary)
    for step, got, want in zip(recovery_steps(0), actual, expected, strict=True):
        assert got == want, f"etcdctl {' '.join(step)}"
    assert actual[0] == (1, "", f"Error: {NO_SPACE}")
    assert actual[5] == (0, "Finished defragmenting etcd member[127.0.0.1:N]\n", "")
    assert actual[9] == (0, "OK\n", "")
    assert defragmented_size < full_size / 4, (full_size, defragmented_size)


def refusals(endpoint: str, raise_alarm) -> dict[str, tuple[grpc.StatusCode, str] | str]:
    """What each write of the recipe services, and reads, deletes and resigning, get once ``raise_alarm``
    (called with the KV and Maintenance stubs) has put the NOSPACE alarm on, and which of the keys they
    would write are there afterwards."""
    with grpc.insecure_channel(endpoint) as channel:
        kv, lease = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.LeaseStub(channel)
        lock, election = lkg.LockStub(channel), elg.ElectionStub(channel)
        lease_id = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)).ID
        leader = election.Campaign(el.CampaignRequest(name=b"e", lease=lease_id, value=b"v")).leader
        raise_alarm(kv, rpc_pb2_grpc.MaintenanceStub(channel))
        calls = {
            "put": lambda: kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v")),
            "lease grant": lambda: lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)),
            "lock": lambda: lock.Lock(lk.LockRequest(name=b"l")),
            "lock on a lease": lambda: lock.Lock(lk.LockRequest(name=b"l", lease=lease_id)),
            "campaign": lambda: election.Campaign(el.CampaignRequest(name=b"e2", value=b"v")),
            "campaign on a lease": lambda: election.Campaign(el.CampaignRequest(name=b"e2", lease=lease_id)),
            "proclaim": lambda: election.Proclaim(el.ProclaimRequest(leader=leader, value=b"w")),
            "range": lambda: kv.Range(rpc_pb2.RangeRequest(key=b"k")),
            "delete": lambda: kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"fill")),
            "resign": lambda: election.Resign(el.ResignRequest(leader=leader)),
            "nested txn put": lambda: kv.Txn(nested_put_txn(b"nested")),
            "read-only nested txn": lambda: kv.Txn(rpc_pb2.TxnRequest(success=[Op(request_txn=rpc_pb2.TxnRequest())])),
        }
        answers = {}
        for name, call in calls.items():
            try:
                call()
                answers[name] = "ok"
            except grpc.RpcError as refused:
                answers[name] = (refused.code(), refused.details())
        stored = [kv.Range(rpc_pb2.RangeRequest(key=k, range_end=end)).kvs for k, end in WRITTEN_UNDER_ALARM]
        answers["keys written"] = [kv.key for kvs in stored for kv in kvs]
    return answers


WRITTEN_UNDER_ALARM = [(b"k", b""), (b"nested", b""), (b"l/", b"l0"), (b"e2/", b"e20")]


def fill(kv, maintenance) -> None:
    fill_until_nospace(kv)


def activate(kv, maintenance) -> None:
    member_id = kv.Range(rpc_pb2.RangeRequest(key=b"k")).header.member_id
    alarm = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=member_id, alarm=rpc_pb2.NOSPACE)
    maintenance.Alarm(alarm)


REFUSED = (grpc.StatusCode.RESOURCE_EXHAUSTED, NO_SPACE)
REFUSED_BY_RECIPE = (grpc.StatusCode.UNKNOWN, NO_SPACE)  # etcd's recipes get it through clientv3: code Unknown
WHILE_NOSPACE = {
    "put": REFUSED,
    "lease grant": REFUSED,
    "lock": REFUSED_BY_RECIPE,
    "lock on a lease": REFUSED_BY_RECIPE,
    "campaign": REFUSED_BY_RECIPE,
    "campaign on a lease": REFUSED_BY_RECIPE,
    "proclaim": REFUSED_BY_RECIPE,
    "range": "ok",
    "delete": "ok",
    "resign": "ok",
    "nested txn put": REFUSED,
    "read-only nested txn": "ok",
    "keys written": [],
}


# Where etcd 3.5.1 answers otherwise: past the quota it refuses every txn, even a read-only one or the
# delete of a Resign; with the alarm raised under the quota it applies the puts of a nested txn (its cost
# rule counts only top-level puts).
ETCD_DIFFERS = {
    fill: {"resign": REFUSED_BY_RECIPE, "nested txn put": REFUSED, "read-only nested txn": REFUSED},
    activate: {"nested txn put": "ok", "keys written": [b"nested"]},
}


@pytest.mark.slow
@pytest.mark.parametrize("raise_alarm", [fill, activate], ids=["quota-filled", "alarm-activated"])
def test_writes_of_lock_election_and_nested_txns_are_refused_while_nospace(raise_alarm, tmp_path):
    with etcdx_process(tmp_path, extra_args=QUOTA).start() as server:
        assert refusals(server.endpoint, raise_alarm) == WHILE_NOSPACE
    with etcd_process(tmp_path, extra_args=QUOTA).start() as server:
        assert refusals(server.endpoint, raise_alarm) == {**WHILE_NOSPACE, **ETCD_DIFFERS[raise_alarm]}


def test_member_serves_through_defragmentation(tmp_path):
    """A light load of puts and reads and an open watcher run across repeated defragmentations: no
    request fails, the watcher sees every revision in order, the file shrinks, and the data (and what
    was written after the defrag) survives a crash; a copy left by a crash mid-defrag is discarded."""
    with etcdx_process(tmp_path).start() as server:
        channel = grpc.insecure_channel(server.endpoint)
        kv, maintenance = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.MaintenanceStub(channel)
        for prefix in (b"kept", b"bulk"):  # ~4 MiB stays, so that each copy takes a while; ~4 MiB is deleted
            for batch in range(20):
                puts = [
                    rpc_pb2.PutRequest(key=b"%s/%02d/%03d" % (prefix, batch, i), value=b"v" * 2048) for i in range(100)
                ]
                kv.Txn(rpc_pb2.TxnRequest(success=[Op(request_put=put) for put in puts]))
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"bulk/", range_end=b"bulk0"))
        start = kv.Range(rpc_pb2.RangeRequest(key=b"x")).header.revision
        kv.Compact(rpc_pb2.CompactionRequest(revision=start, physical=True))
        watcher = RecordingWatch(server.endpoint)
        watcher.create(rpc_pb2.WatchCreateRequest(key=b"load/", range_end=b"load0", start_revision=start + 1))
        before = maintenance.Status(rpc_pb2.StatusRequest())

        failures: list[BaseException] = []
        stop = threading.Event()
        written: list[int] = []

        def load() -> None:
            try:
                with grpc.insecure_channel(server.endpoint) as own:
                    client = rpc_pb2_grpc.KVStub(own)
                    i = 0
                    while not stop.is_set() or i < 50:
                        key = b"load/%05d" % i
                        written.append(client.Put(rpc_pb2.PutRequest(key=key, value=b"v%d" % i)).header.revision)
                        assert client.Range(rpc_pb2.RangeRequest(key=key), timeout=10).kvs[0].value == b"v%d" % i
                        i += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                failures.append(exc)

        loader = threading.Thread(target=load)
        loader.start()
        try:
            sizes, served = [], []
            for _ in range(10):
                done_before = len(written)
                assert maintenance.Defragment(rpc_pb2.DefragmentRequest(), timeout=30) == rpc_pb2.DefragmentResponse()
                sizes.append(maintenance.Status(rpc_pb2.StatusRequest()).dbSize)
                served.append(len(written) - done_before)
        finally:
            stop.set()
            loader.join(timeout=60)
        assert not failures, failures
        assert sum(served) > 0, served  # the load ran across the defragmentations
        assert before.dbSizeInUse < before.dbSize * 0.6  # what the compaction freed, before the defrag
        assert sizes[0] < before.dbSize * 0.6, (before.dbSize, sizes)
        after = maintenance.Status(rpc_pb2.StatusRequest())
        assert after.dbSizeInUse <= after.dbSize

        watcher.wait_for(lambda r: any(e.kv.mod_revision == written[-1] for e in r.events), 0, timeout=10)
        seen = [e.kv.mod_revision for r in watcher.responses for e in r.events]
        assert seen == written
        watcher.close()

        kv.Put(rpc_pb2.PutRequest(key=b"after-defrag", value=b"kept"))
        channel.close()
        server.kill9()
        interrupted_copy = Path(server.data_dir, "member", "kv", DEFRAG_FILE)  # as a crash mid-defrag leaves it
        interrupted_copy.write_bytes(b"\0" * 65536)
        server.restart()
        assert not interrupted_copy.exists()
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            assert kv.Range(rpc_pb2.RangeRequest(key=b"after-defrag")).kvs[0].value == b"kept"
            loaded = kv.Range(rpc_pb2.RangeRequest(key=b"load/", range_end=b"load0", count_only=True))
            assert loaded.count == len(written)


def test_etcdctl_defrag_prints_what_etcd_prints(tmp_path):
    """As etcd 3.5.1 prints it: the endpoint as given, or with --cluster the client URL of each member."""
    with etcdx_process(tmp_path).start() as server:
        for binary in CLIENTS.args[1]:
            for args, member in (((), server.endpoint), (("--cluster",), server.client_url)):
                result = etcdctl(server.endpoint, "defrag", *args, binary=binary)
                assert result.stdout == f"Finished defragmenting etcd member[{member}]\n"
