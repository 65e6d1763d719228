"""One member per data directory: a second etcdx on the same --data-dir exits at once with a clear error, having
read and written nothing there, and the first member keeps serving and loses nothing."""

from __future__ import annotations

import os
import subprocess
import time

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import _cluster_flags, etcdx_process, free_ports


def _tree(path: str) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and modification time."""
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), path)] = (st.st_size, st.st_mtime_ns)
    return found


def _put_and_count(endpoint: str, first: int, count: int) -> int:
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for n in range(first, first + count):
            kv.Put(rpc_pb2.PutRequest(key=f"lock/{n:04d}".encode(), value=b"v"), timeout=10)
        found = kv.Range(rpc_pb2.RangeRequest(key=b"lock/", range_end=b"lock0", count_only=True), timeout=10)
        return found.count


def test_second_member_on_the_same_data_dir_exits_and_the_first_loses_nothing(tmp_path):
    with etcdx_process(tmp_path, name="first").start() as first:
        assert _put_and_count(first.endpoint, 0, 100) == 100
        # The first member commits its batch transaction up to --backend-batch-interval (100 ms) after the last
        # write and syncs it soon after; past that it writes nothing while idle.
        time.sleep(1.0)
        before = _tree(first.data_dir)
        client_port, peer_port = free_ports(2)
        second = subprocess.run(
            [first.argv[0], "-m", "etcdx", *_cluster_flags("second", first.data_dir, client_port, peer_port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"data directory {first.data_dir!r} is in use: another etcdx member holds its lock" in second.stderr
        assert _tree(first.data_dir) == before, "the second member touched the data dir"
        assert _put_and_count(first.endpoint, 100, 100) == 200
        first.kill9()
        first.start()
        assert _put_and_count(first.endpoint, 200, 0) == 200


def test_the_lock_goes_with_the_member(tmp_path):
    """A crashed member leaves no stale lock: the next start on the directory succeeds."""
    member = etcdx_process(tmp_path).start()
    _put_and_count(member.endpoint, 0, 10)
    member.kill9()
    member.start()
    try:
        assert _put_and_count(member.endpoint, 10, 0) == 10
    finally:
        member.stop()
