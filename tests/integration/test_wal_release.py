"""WAL release on a real member: after --snapshot-count applied entries and a completed backend sync, the
WAL directory holds at most --max-wals segments plus those with the catch-up margin, restarts read only the
segments they need, and nothing acknowledged is lost (kill -9 included).

Small segments come from the test-only ETCDX_TEST_WAL_SEGMENT_BYTES; bench/wal_growth.py runs the same
rule at 1,000,000 puts with etcd's defaults.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import time

import grpc

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.wal.segment import parse_name
from tests.support.procs import ServerProcess, etcdx_process

SNAPSHOT_COUNT = 100
CATCHUP = 50
MAX_WALS = 2
WRITERS = 4
PUTS_PER_WRITER = 300
FLAGS = (
    "--snapshot-count",
    str(SNAPSHOT_COUNT),
    "--max-wals",
    str(MAX_WALS),
    "--experimental-snapshot-catchup-entries",
    str(CATCHUP),
)
BACKEND_SYNC_SETTLE = 0.5  # past the backend sync (every 100 ms) that follows the last apply
SMALL_SEGMENTS = {"ETCDX_TEST_WAL_SEGMENT_BYTES": "8192"}


def put_all(server: ServerProcess) -> int:
    """WRITERS threads put PUTS_PER_WRITER keys each; returns the raft index after the last one."""

    def writer(number: int) -> None:
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            for i in range(PUTS_PER_WRITER):
                kv.Put(rpc_pb2.PutRequest(key=b"w%d/%04d" % (number, i), value=b"v" * 100), timeout=10)

    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    with grpc.insecure_channel(server.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10).raftIndex


def segments(server: ServerProcess) -> list[tuple[int, int]]:
    """(seq, first index) of each WAL segment, oldest first."""
    wal_dir = pathlib.Path(server.data_dir) / "member" / "wal"
    return sorted(parsed for name in os.listdir(wal_dir) if (parsed := parse_name(name)))


def key_count(server: ServerProcess) -> int:
    with grpc.insecure_channel(server.endpoint) as channel:
        request = rpc_pb2.RangeRequest(key=b"w", range_end=b"x", count_only=True)
        return rpc_pb2_grpc.KVStub(channel).Range(request, timeout=10).count


def last_release(server: ServerProcess) -> dict:
    text = pathlib.Path(server.log_path).read_text()
    return [json.loads(line) for line in text.splitlines() if '"wal: released segments"' in line][-1]


def assert_release_rule(server: ServerProcess, last_index: int) -> None:
    """Every segment but the newest MAX_WALS holds entries the last release had to keep (at or above its
    index: durable index - catch-up + 1), and releases keep up: the last one covers all but the entries of
    about one --snapshot-count period (plus a backend sync's worth) before the last index."""
    time.sleep(BACKEND_SYNC_SETTLE)
    below = last_release(server)["below_index"]
    found = segments(server)
    older_successors = found[1 : max(len(found) - MAX_WALS + 1, 1)]
    assert all(first > below for _, first in older_successors), (found, below)
    assert below > last_index - 3 * SNAPSHOT_COUNT - CATCHUP, (below, last_index)


def started_lines(server: ServerProcess) -> list[dict]:
    text = pathlib.Path(server.log_path).read_text()
    return [json.loads(line) for line in text.splitlines() if '"server started"' in line]


def test_release_keeps_max_wals_plus_the_catch_up_margin_and_loses_nothing(tmp_path):
    with etcdx_process(tmp_path, extra_args=FLAGS, env=SMALL_SEGMENTS).start() as server:
        last_index = put_all(server)
        assert segments(server)[-1][0] >= 10, "the run should have written many segments"
        assert_release_rule(server, last_index)
        assert segments(server)[0][0] > 0, "nothing was released"

        server.kill9()
        server.start()
        assert key_count(server) == WRITERS * PUTS_PER_WRITER
        restarted = started_lines(server)[-1]
        assert restarted["wal_segments_read"] <= 2, restarted  # only what replay needs

        last_index = put_all(server)  # overwrites: the same keys again
        assert_release_rule(server, last_index)
        server.restart()
        assert key_count(server) == WRITERS * PUTS_PER_WRITER


def test_max_wals_zero_keeps_every_segment(tmp_path):
    flags = ("--snapshot-count", str(SNAPSHOT_COUNT), "--max-wals", "0")
    with etcdx_process(tmp_path, extra_args=flags, env=SMALL_SEGMENTS).start() as server:
        put_all(server)
        time.sleep(0.5)  # past a backend sync: a release would have run
        found = segments(server)
        assert found[0][0] == 0 and len(found) == found[-1][0] + 1 > 10
