"""Backup and restore end to end, with real servers and the real etcdctl / etcdutl.

``migrate_from_etcd``: etcd 3.5.1 is loaded with keys with history (every key written twice, some deleted),
leases and two compactions; `etcdctl snapshot save` saves it; `etcdx snapshot restore` makes a new data dir
from the file; etcdx starts on it; then every Range asked (all keys at the latest revision, and ranges at
older revisions after the compaction) must give the same kvs as etcd, and the leases the same ids and
granted TTLs. ``etcdx snapshot status`` and ``etcdutl snapshot status`` are run on the file.

The same from a live etcdx (a member, or a cluster). The restore makes a new cluster of one member or of several
(``compare(..., members=3)``: every member restored from the one file, as etcd's disaster-recovery runbook
does), and every member's answers must equal the source's.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import ETCD_BIN, ETCDCTL, ServerProcess, free_ports, start_cluster, stop_cluster

ETCDUTL = os.path.join(ETCD_BIN, "etcdutl")
_BIG = [("grpc.max_receive_message_length", 512 * 1024 * 1024)]
_TXN_OPS = 100  # puts per Txn while loading (etcd's --max-txn-ops is 128)
LEASES = 20


@dataclass
class Outcome:
    keys: int
    latest_keys: int  # keys a Range of everything finds at the latest revision
    revision: int
    compacted: int
    ranges_compared: int
    ranges_equal: int
    leases_equal: bool
    status_etcdx: str
    status_etcdutl: str


def load(endpoint: str, keys: int, seed: int) -> int:
    """Writes the data set: ``keys`` keys written in two rounds of Txns of _TXN_OPS puts (5% with one of LEASES
    leases), 2% deleted after each round, a compaction at the middle of each round, then 2% written again;
    returns the last compacted revision."""
    rng = random.Random(seed)
    names = [b"key/%07d" % i for i in range(keys)]
    with grpc.insecure_channel(endpoint, options=_BIG) as channel:
        kv, lease = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.LeaseStub(channel)
        ids = [lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(ID=1000 + i, TTL=3600 + i)).ID for i in range(LEASES)]
        compacted = 0
        for _ in range(2):  # two rounds: every key has history; each round ends with a compaction
            middle = 0
            for start in range(0, keys, _TXN_OPS):
                if start >= keys // 2 and not middle:
                    middle = kv.Range(rpc_pb2.RangeRequest(key=b"key/", limit=1)).header.revision
                puts = [
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(
                            key=k,
                            value=rng.randbytes(rng.randrange(0, 64)),
                            lease=rng.choice(ids) if rng.random() < 0.05 else 0,
                        )
                    )
                    for k in names[start : start + _TXN_OPS]
                ]
                kv.Txn(rpc_pb2.TxnRequest(success=puts))
            for k in rng.sample(names, keys // 50):
                kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=k))
            # Half the keys were written after this point: they keep two revisions past the compaction.
            compacted = middle
            kv.Compact(rpc_pb2.CompactionRequest(revision=compacted, physical=True))
        for k in rng.sample(names, keys // 50):  # history after the last compaction
            kv.Put(rpc_pb2.PutRequest(key=k, value=b"after"))
    return compacted


def _requests(revision: int, compacted: int) -> list[rpc_pb2.RangeRequest]:
    all_keys = rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0")
    return [
        all_keys,
        rpc_pb2.RangeRequest(key=b"key/", range_end=b"key0", revision=compacted),
        rpc_pb2.RangeRequest(key=b"key/", range_end=b"key0", revision=(compacted + revision) // 2),
        rpc_pb2.RangeRequest(key=b"key/0000", range_end=b"key/0001", revision=compacted + 1),
        rpc_pb2.RangeRequest(key=b"key/", range_end=b"key0", count_only=True),
        rpc_pb2.RangeRequest(key=b"key/", range_end=b"key0", revision=compacted - 1),
    ]


def _answers(endpoint: str, requests: list[rpc_pb2.RangeRequest]) -> list:
    out = []
    with grpc.insecure_channel(endpoint, options=_BIG) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for request in requests:
            try:
                r = kv.Range(request, timeout=120)
            except grpc.RpcError as exc:
                out.append(("error", exc.code(), exc.details()))
                continue
            out.append(([x.SerializeToString() for x in r.kvs], r.count, r.more, r.header.revision))
    return out


def _leases(endpoint: str) -> list[tuple[int, int]]:
    with grpc.insecure_channel(endpoint) as channel:
        stub = rpc_pb2_grpc.LeaseStub(channel)
        ids = sorted(x.ID for x in stub.LeaseLeases(rpc_pb2.LeaseLeasesRequest()).leases)
        ttls = [stub.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=i, keys=True)) for i in ids]
        return [(t.ID, t.grantedTTL, tuple(sorted(t.keys))) for t in ttls]


def save(endpoint: str, path: Path) -> None:
    done = subprocess.run([ETCDCTL, "--endpoints", endpoint, "snapshot", "save", str(path)], capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode())


def restored_member(tmp: Path, snapshot: Path, name: str = "restored") -> ServerProcess:
    """`etcdx snapshot restore` into a new data dir, and the etcdx process (not started) to run on it."""
    return restored_cluster(tmp, snapshot, size=1, names=[name])[0]


def restored_cluster(tmp: Path, snapshot: Path, size: int, names: list[str] | None = None) -> list[ServerProcess]:
    """`etcdx snapshot restore` of one file into ``size`` new data dirs, one per member of a new cluster (the
    disaster-recovery runbook: every member restored from the same file with its own --name and peer URL), and
    the etcdx processes (not started) to run on them: launch them all, then wait_ready each."""
    names = names or [f"restored{n}" for n in range(size)]
    ports = free_ports(2 * size)
    peers = [f"http://127.0.0.1:{ports[2 * n + 1]}" for n in range(size)]
    initial = ",".join(f"{name}={url}" for name, url in zip(names, peers, strict=True))
    members = []
    for n, name in enumerate(names):
        client_url, peer_url, data_dir = f"http://127.0.0.1:{ports[2 * n]}", peers[n], str(tmp / f"{name}.etcdx")
        flags = ["--name", name, "--initial-cluster", initial, "--initial-advertise-peer-urls", peer_url]
        flags += ["--initial-cluster-token", "restored-cluster"]
        subprocess.run(
            [sys.executable, "-m", "etcdx", "snapshot", "restore", str(snapshot), "--data-dir", data_dir, *flags],
            check=True,
            capture_output=True,
        )
        argv = [sys.executable, "-m", "etcdx", "--data-dir", data_dir, *flags]
        argv += ["--listen-client-urls", client_url, "--advertise-client-urls", client_url]
        argv += ["--listen-peer-urls", peer_url]
        members.append(ServerProcess(argv, data_dir, ports[2 * n], ports[2 * n + 1], str(tmp / f"{name}.log")))
    return members


def _status(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def compare(source: ServerProcess, tmp: Path, compacted: int, keys: int, members: int = 1) -> Outcome:
    """Saves ``source``, restores the file into a new etcdx cluster of ``members`` and compares every member's
    answers with the source's (``ranges_equal`` counts the ranges every member answered as the source did)."""
    snapshot = tmp / "backup.db"
    save(source.endpoint, snapshot)
    with grpc.insecure_channel(source.endpoint) as channel:
        revision = rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"k")).header.revision
    requests = _requests(revision, compacted)
    expected, expected_leases = _answers(source.endpoint, requests), _leases(source.endpoint)
    status_etcdx = _status(sys.executable, "-m", "etcdx", "snapshot", "status", str(snapshot), "-w", "json")
    try:
        status_etcdutl = _status(ETCDUTL, "snapshot", "status", str(snapshot), "-w", "json")
    except subprocess.CalledProcessError as exc:
        status_etcdutl = f"(etcdutl refused: {exc.stderr.strip()})"
    restored = start_cluster(restored_cluster(tmp, snapshot, members))
    try:
        answers = [(_answers(m.endpoint, requests), _leases(m.endpoint)) for m in restored]
    finally:
        stop_cluster(restored)
    equal = sum(1 for k, a in enumerate(expected) if all(got[k] == a for got, _ in answers))
    same_leases = all(got_leases == expected_leases for _, got_leases in answers)
    return Outcome(
        keys=keys,
        latest_keys=expected[0][1],
        revision=revision,
        compacted=compacted,
        ranges_compared=len(requests),
        ranges_equal=equal,
        leases_equal=same_leases,
        status_etcdx=status_etcdx,
        status_etcdutl=status_etcdutl,
    )
