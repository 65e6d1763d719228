"""Defragmentations on a running EtcdServer (real LMDB and WAL in a temporary directory): writes proposed while
several defragmentations follow one another are all applied, none into a file about to be replaced."""

from __future__ import annotations

import trio

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.server import EtcdServer
from tests.support.server_settings import server_settings


def test_writes_between_back_to_back_defragmentations_are_kept(tmp_path):
    """Applies wait for a defragmentation's copy; when one defragmentation ends and the next one has already
    taken the backend, the waiting apply must wait again (else it writes into the file the next swap drops)."""

    async def main():
        server = EtcdServer(server_settings(str(tmp_path / "data"), backend_map_size=256 << 20))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            written = 0

            async def writer():
                nonlocal written
                for i in range(300):
                    await server.propose(InternalRequest(put=rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v")))
                    written += 1

            async def defragmenter():
                for _ in range(15):
                    await server.defragment()

            with trio.fail_after(60):
                async with trio.open_nursery() as load:
                    load.start_soon(writer)
                    for _ in range(3):
                        load.start_soon(defragmenter)
            response = server.range(rpc_pb2.RangeRequest(key=b"k", range_end=b"l", count_only=True))
            assert (written, response.count) == (300, 300)
            nursery.cancel_scope.cancel()

    trio.run(main)
