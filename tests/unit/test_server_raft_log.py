"""The server's in-memory raft log (the core's storage over the WAL) on a running EtcdServer: it is compacted
behind the durable backend as the WAL is released, and a member restarted from that state resumes its log."""

from __future__ import annotations

import trio

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.server import EtcdServer
from tests.support.server_settings import server_settings


def settings(tmp_path):
    return server_settings(
        str(tmp_path / "data"), snapshot_count=50, snapshot_catchup_entries=10, backend_map_size=64 << 20
    )


async def put(server: EtcdServer, n: int) -> None:
    await server.propose(InternalRequest(put=rpc_pb2.PutRequest(key=b"k%04d" % n, value=b"v")))


def test_the_raft_log_is_compacted_behind_the_durable_backend_and_resumes_after_restart(tmp_path):
    async def first_run():
        server = EtcdServer(settings(tmp_path))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            storage = server.raft_storage
            booted = storage.first_index()  # past the bootstrap entries, applied before the start
            for n in range(300):
                await put(server, n)
            with trio.fail_after(10):
                while storage.first_index() == booted:  # the backend sync after the writes compacts it
                    await trio.sleep(0.05)
            snapshot = storage.stored_snapshot()  # recorded without its image (built when a follower needs it)
            # Compacted up to the snapshot less the catch-up entries, never past what the backend made durable.
            assert snapshot.index <= server.durable_index
            assert storage.first_index() == snapshot.index - 10 + 1
            assert storage.last_index() - storage.first_index() + 1 < 300
            assert storage.term(snapshot.index) == snapshot.term == server.raft_term
            nursery.cancel_scope.cancel()
        return server.raft_term

    async def second_run(term: int):
        server = EtcdServer(settings(tmp_path))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            assert server.raft_term == term + 1
            await put(server, 300)
            response = server.range(rpc_pb2.RangeRequest(key=b"k", range_end=b"l", count_only=True))
            nursery.cancel_scope.cancel()
        return response.count

    term = trio.run(first_run)
    assert trio.run(second_run, term) == 301
