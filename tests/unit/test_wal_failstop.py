"""Fail-stop: a member whose WAL sync thread or backend sync fails stops with one clear log line and a
non-zero exit, instead of hanging every write behind a /health that says healthy.

Each test runs a real etcdx process (the `etcdx` command, wrapped so that a fault can be armed once it is
serving: a file's existence arms it), on real sockets and files.
"""

from __future__ import annotations

import json
import pathlib
import sys

import grpc
import pytest
import trio

from etcdx.api.http.endpoints import HttpEndpoints
from etcdx.cli.main import settings_from_config
from etcdx.config import parse_config
from etcdx.net.http1 import HttpRequest
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.server import EtcdServer, MemberStopped
from etcdx.wal import record
from etcdx.wal.record import RecordType
from tests.support import wal_faults
from tests.support.procs import ServerProcess, _cluster_flags, etcdx_process, free_ports

CHILD = """
import os, sys
from etcdx.cli.main import main
from etcdx.mvcc.backend import Backend

arm, fault = sys.argv[1], sys.argv[2]

if fault == "wal-thread":
    from tests.support import wal_faults

    def fault():
        if os.path.exists(arm):
            raise RuntimeError("injected: not an OSError, while syncing the WAL")

    wal_faults.arm(fault)
else:
    real_sync = Backend.sync

    def sync(self):
        if os.path.exists(arm):
            raise OSError(5, "injected: backend sync failed")
        real_sync(self)

    Backend.sync = sync

sys.exit(main(sys.argv[3:]))
"""


def member(tmp_path: pathlib.Path, fault: str) -> tuple[ServerProcess, pathlib.Path]:
    client_port, peer_port = free_ports(2)
    data_dir = str(tmp_path / "member.etcdx")
    arm = tmp_path / "armed"
    argv = [sys.executable, "-c", CHILD, str(arm), fault, *_cluster_flags("default", data_dir, client_port, peer_port)]
    env = {"PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])}
    return ServerProcess(argv, data_dir, client_port, peer_port, str(tmp_path / "member.log"), env=env), arm


def put_after_arming(server: ServerProcess, arm: pathlib.Path) -> None:
    with grpc.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(rpc_pb2.PutRequest(key=b"before", value=b"1"), timeout=10)
        arm.touch()
        try:
            kv.Put(rpc_pb2.PutRequest(key=b"after", value=b"2"), timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED, "the write hung"


def stopped_lines(server: ServerProcess) -> list[dict]:
    server.proc.wait(timeout=20)
    text = pathlib.Path(server.log_path).read_text()
    assert "Traceback" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line["level"] == "error"]


def test_an_exception_on_the_wal_sync_thread_stops_the_member(tmp_path):
    server, arm = member(tmp_path, "wal-thread")
    with server.start():
        put_after_arming(server, arm)
        [line] = stopped_lines(server)
    assert server.proc.returncode == 1
    assert line["msg"] == "member stopped"
    assert "wal: cannot write the log" in line["reason"] and "not an OSError" in line["reason"]


def test_a_failed_backend_sync_stops_the_member(tmp_path):
    server, arm = member(tmp_path, "backend-sync")
    with server.start():
        put_after_arming(server, arm)
        [line] = stopped_lines(server)
    assert server.proc.returncode == 1
    assert "backend: sync failed" in line["reason"] and "injected" in line["reason"]


async def test_health_is_false_once_the_member_cannot_write(tmp_path, monkeypatch):
    config = parse_config(["--data-dir", str(tmp_path / "data")], {})
    server = EtcdServer(settings_from_config(config))
    health = HttpEndpoints(server)
    request = HttpRequest(method="GET", target="/health", headers=[], body=b"")

    armed = False

    def fault() -> None:
        if armed:
            raise RuntimeError("injected")

    wal_faults.arm(fault, monkeypatch.setattr)  # before the WAL opens: its sync worker is the armed one
    stopped = []

    async def run() -> None:
        try:
            await server.run()
        except* MemberStopped as group:
            stopped.append(group)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await server.wait_started()
        assert (await health(request)).status == 200
        armed = True
        put = InternalRequest(put=rpc_pb2.PutRequest(key=b"k", value=b"v"))
        server.propose_nowait(put, lambda result: None)  # a write the WAL cannot persist
        with trio.fail_after(10):
            while not stopped:
                await trio.sleep(0.01)
    response = await health(request)
    assert response.status == 503
    assert json.loads(response.body)["health"] == "false"
    assert "injected" in json.loads(response.body)["reason"]


def test_a_damaged_wal_stops_start_up_with_the_segment_and_offset(tmp_path):
    """The review's reproduction on a real member: one damaged length field in the last segment."""
    server = etcdx_process(tmp_path)
    with server.start(), grpc.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for i in range(10):
            kv.Put(rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v" * 50), timeout=10)
    wal_dir = pathlib.Path(server.data_dir) / "member" / "wal"
    [segment] = sorted(wal_dir.glob("*.wal"))
    data = bytearray(segment.read_bytes())
    offset, entries_seen = 0, []
    while (decoded := record.decode_at(bytes(data), offset)).kind == "record":
        if decoded.record_type == RecordType.ENTRY:
            entries_seen.append(offset)
        offset = decoded.next_offset
    damaged_at = entries_seen[2]
    data[damaged_at : damaged_at + 4] = (100_000).to_bytes(4, "little")
    segment.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in wal_dir.iterdir()}

    with pytest.raises(RuntimeError, match="server exited with 1"):
        server.start()
    assert {p.name: p.read_bytes() for p in wal_dir.iterdir()} == before
    [line] = stopped_lines(server)
    assert f"corrupt record in {segment} at offset {damaged_at}" in line["reason"]
    assert line["reason"].startswith("start-up refused")
