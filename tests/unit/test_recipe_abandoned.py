"""Lock and Campaign abandoned between proposing their first txn and its apply, on a real EtcdServer (real LMDB
and WAL in a temporary directory). The txn is not withdrawn (it is in the log), so it applies and creates the
session's key; etcd's recipe then leaves that key queued until the lease ends, and every later caller waits
behind it. etcdx deletes it again (docs/differences.md)."""

from __future__ import annotations

import trio

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server import concurrency
from etcdx.server.server import EtcdServer
from tests.support.server_settings import server_settings


async def _abandon_after_proposing(server: EtcdServer, call) -> None:
    """Runs ``call`` until its first proposal waits to be applied, then cancels it. Applies are held meanwhile
    (as a defragmentation holds them), so the proposal cannot apply before the cancellation; they resume after."""
    waiting = len(server._waiters)
    server._applies_resumed = resumed = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            while len(server._waiters) == waiting:
                await trio.sleep(0)
            nursery.cancel_scope.cancel()
    finally:
        server._applies_resumed = None
        resumed.set()


def _keys(server: EtcdServer, prefix: bytes) -> list[bytes]:
    response = server.range(rpc_pb2.RangeRequest(key=prefix, range_end=prefix[:-1] + b"0"))
    return [kv.key for kv in response.kvs]


def _run(tmp_path, scenario) -> None:
    async def main():
        server = EtcdServer(server_settings(str(tmp_path / "data")))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            with trio.fail_after(20):
                await scenario(server)
            nursery.cancel_scope.cancel()

    trio.run(main)


async def _lease(server: EtcdServer) -> int:
    return (await server.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=60))).ID


async def _settled(server: EtcdServer, revision: int) -> None:
    while server.header().revision < revision:
        await trio.sleep(0.01)


def test_an_abandoned_lock_leaves_no_waiter(tmp_path):
    async def scenario(server):
        holder, waiter = await _lease(server), await _lease(server)
        _, held = await concurrency.lock(server, b"L", holder)
        before = server.header().revision
        await _abandon_after_proposing(server, lambda: concurrency.lock(server, b"L", waiter))
        await _settled(server, before + 2)  # the abandoned put applied, then its delete
        assert _keys(server, b"L/") == [held]

    _run(tmp_path, scenario)


def test_an_abandoned_campaign_leaves_no_candidate(tmp_path):
    async def scenario(server):
        leader, candidate = await _lease(server), await _lease(server)
        _, key, _ = await concurrency.campaign(server, b"E", leader, b"a")
        before = server.header().revision
        await _abandon_after_proposing(server, lambda: concurrency.campaign(server, b"E", candidate, b"b"))
        await _settled(server, before + 2)
        assert _keys(server, b"E/") == [key]

    _run(tmp_path, scenario)


def test_an_abandoned_second_lock_of_a_session_keeps_its_key(tmp_path):
    """The same session locking again finds its key there (etcd's re-entry): the abandoned call created nothing,
    so it deletes nothing."""

    async def scenario(server):
        holder = await _lease(server)
        _, held = await concurrency.lock(server, b"L", holder)
        before = server.header().revision
        await _abandon_after_proposing(server, lambda: concurrency.lock(server, b"L", holder))
        await concurrency.txn(server, rpc_pb2.TxnRequest())  # an entry after the abandoned one, applied in order
        assert server.header().revision == before
        assert _keys(server, b"L/") == [held]

    _run(tmp_path, scenario)
