"""etcd's admission rule on a real EtcdServer (real LMDB and WAL in a temporary directory): proposals are refused
with "etcdserver: too many requests" (code 2) once more than 5000 entries wait to be applied, and accepted again
once apply catches up."""

from __future__ import annotations

import pytest
import trio

from etcdx import errors
from etcdx.errors import StatusCode
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.server import MAX_APPLY_BACKLOG, EtcdServer
from etcdx.server.settings import ServerSettings
from tests.support.server_settings import server_settings


def settings(tmp_path) -> ServerSettings:
    return server_settings(str(tmp_path / "data"))


def put(i: int) -> InternalRequest:
    return InternalRequest(put=rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v"))


def test_too_many_requests_once_apply_lags_by_more_than_5000(tmp_path):
    async def main():
        server = EtcdServer(settings(tmp_path))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            done = []
            # No checkpoint between the proposals: nothing is applied meanwhile, so the backlog only grows. A lag
            # of exactly MAX_APPLY_BACKLOG is still accepted (etcd refuses when it is greater).
            accepted = MAX_APPLY_BACKLOG + 1
            for i in range(accepted):
                server.propose_nowait(put(i), done.append)
            with pytest.raises(errors.EtcdError) as refused:
                server.propose_nowait(put(-1), done.append)
            assert refused.value.code == StatusCode.UNKNOWN
            assert refused.value.message == "etcdserver: too many requests"
            with trio.fail_after(30):
                while len(done) < accepted:
                    await trio.sleep(0.01)
            assert not any(isinstance(result, errors.EtcdError) for result in done)
            response = await server.propose(put(-2))  # apply caught up: accepted again
            assert response.header.revision == 1 + accepted + 1  # a fresh store is at revision 1
            nursery.cancel_scope.cancel()

    trio.run(main)
