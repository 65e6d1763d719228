"""A single member killed (kill -9) and restarted 20 times while clients write: Raft's persistent state and
every acknowledged write survive each restart.

- Term and vote (Raft §5.2, figure 2: persisted before answering anyone): after each stop the WAL's last
  HardState votes for this member in the term it led, and the restarted member leads in exactly the next
  term (its one election); the term never goes back.
- No acknowledged write is lost: every put a client was told succeeded is read back, with its value, after
  every restart (a put whose answer was lost to the kill may or may not be there).
"""

from __future__ import annotations

import os
import threading

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import etcdx_process
from tests.support.wal_reader import last_hard_state

RESTARTS = 20
WRITERS = 4
LOAD_SECONDS = 0.3


def write_until(endpoint: str, writer: int, cycle: int, stop: threading.Event, acked: dict[bytes, bytes]) -> None:
    """Puts fresh keys until ``stop`` or the server goes away; records what was acknowledged."""
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        n = 0
        while not stop.is_set():
            key, value = b"load/%02d/%d/%06d" % (cycle, writer, n), b"v%d" % n
            try:
                kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=5)
            except grpc.RpcError:
                return  # killed mid-request: this put's fate is unknown, and nothing after it was sent
            acked[key] = value
            n += 1


def read_all(endpoint: str) -> dict[bytes, bytes]:
    with grpc.insecure_channel(endpoint) as channel:
        response = rpc_pb2_grpc.KVStub(channel).Range(
            rpc_pb2.RangeRequest(key=b"load/", range_end=b"load0"), timeout=10
        )
    return {kv.key: kv.value for kv in response.kvs}


def status(endpoint: str) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10)


def test_restarts_under_load_keep_term_vote_and_every_acknowledged_write(tmp_path):
    acked: dict[bytes, bytes] = {}
    with etcdx_process(tmp_path).start() as server:
        wal_dir = os.path.join(server.data_dir, "member", "wal")
        first = status(server.endpoint)
        member_id, term = first.header.member_id, first.raftTerm
        assert first.leader == member_id and term == 2  # a new member's first election, as etcd's
        for cycle in range(RESTARTS):
            stop = threading.Event()
            writers = [
                threading.Thread(target=write_until, args=(server.endpoint, w, cycle, stop, acked))
                for w in range(WRITERS)
            ]
            for thread in writers:
                thread.start()
            stop.wait(LOAD_SECONDS)
            server.kill9()
            stop.set()
            for thread in writers:
                thread.join(timeout=30)
            hard_state = last_hard_state(wal_dir)
            assert (hard_state.term, hard_state.vote) == (term, member_id), f"restart {cycle}"
            server.start()
            now = status(server.endpoint)
            assert (now.raftTerm, now.leader) == (term + 1, member_id), f"restart {cycle}"
            term = now.raftTerm
            stored = read_all(server.endpoint)
            lost = {key for key, value in acked.items() if stored.get(key) != value}
            assert not lost, f"restart {cycle}: {len(lost)} acknowledged puts lost, e.g. {sorted(lost)[:3]}"
    assert len(acked) > RESTARTS * WRITERS  # the load did run
