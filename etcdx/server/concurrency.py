"""etcd's client-side concurrency recipes (sessions, mutex, election), run inside the server.

This is what etcd's v3lock and v3election services do: they use the clientv3 recipes against their
own server. Here the recipes call the server directly: writes through ``propose`` (the log), reads
through ``range``, waits through the watch hub. Every lease grant and every txn that may put meets the
backend quota and the NOSPACE alarm first, as the recipes' requests meet etcd's quota check, and is
refused with etcd's error as clientv3 hands it to the services: code Unknown, the message unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import trio

from etcdx import errors
from etcdx.errors import EtcdError, StatusCode, etcd_error
from etcdx.mvcc.keys import prefix_end
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.mvccpb import kv_pb2
from etcdx.server import internal_watch, quota

SESSION_TTL = 60
CLEANUP_TIMEOUT = 5.0  # a cancelled Lock/Campaign still removes its key, within this bound
ERR_ELECTION_NO_LEADER = etcd_error(StatusCode.UNKNOWN, "election: no leader")
ERR_ELECTION_NOT_LEADER = etcd_error(StatusCode.UNKNOWN, "election: not leader")
ERR_NO_SPACE = etcd_error(StatusCode.UNKNOWN, errors.ERR_NO_SPACE.message)
Compare = rpc_pb2.Compare
RequestOp = rpc_pb2.RequestOp


async def session_lease(server, lease_id: int) -> int:
    """The lease a session runs on: the given one, or a fresh 60 s lease nobody keeps alive (etcd's)."""
    if lease_id:
        return lease_id
    with _refused_as_by_clientv3():
        await server.check_quota(quota.LEASE_GRANT_COST)
        granted = await server.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=SESSION_TTL))
    return granted.ID


async def txn(server, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
    with _refused_as_by_clientv3():
        await server.check_quota(quota.txn_cost(request))
        return await server.propose(InternalRequest(txn=request))


async def create_own_key(server, request: rpc_pb2.TxnRequest, key: bytes) -> rpc_pb2.TxnResponse:
    """``txn`` for the request by which Lock or Campaign creates its session's ``key``.

    A caller cancelled after proposing does not withdraw the txn (``propose``): it may still apply and leave
    ``key`` waiting in the queue until the session's lease ends, holding up every later caller (etcd's recipe
    does that). Here, if the abandoned txn applies and created ``key``, the key is deleted again; one that
    found ``key`` already there (an earlier call of the same session) leaves it alone.
    """

    def abandoned(result: Any) -> None:
        if isinstance(result, rpc_pb2.TxnResponse) and result.succeeded:
            with contextlib.suppress(EtcdError):  # runs inside apply; if refused (backlog), the lease ends the key
                server.propose_nowait(_delete(key), _ignore)

    with _refused_as_by_clientv3():
        await server.check_quota(quota.txn_cost(request))
        return await server.propose(InternalRequest(txn=request), abandoned)


def _delete(key: bytes) -> InternalRequest:
    return InternalRequest(delete_range=rpc_pb2.DeleteRangeRequest(key=key))


def _ignore(_: Any) -> None:
    pass


@contextlib.contextmanager
def _refused_as_by_clientv3() -> Iterator[None]:
    """A NOSPACE refusal (from the quota check, or from apply while the alarm is on) as etcd's recipe
    services pass it on: code Unknown."""
    try:
        yield
    except errors.ERR_NO_SPACE:
        raise ERR_NO_SPACE from None


def first_created(server, prefix: bytes, revision: int = 0) -> rpc_pb2.RangeResponse:
    return server.range(
        rpc_pb2.RangeRequest(
            key=prefix,
            range_end=prefix_end(prefix),
            sort_order=rpc_pb2.RangeRequest.ASCEND,
            sort_target=rpc_pb2.RangeRequest.CREATE,
            limit=1,
            revision=revision,
        )
    )


async def wait_deletes(server, prefix: bytes, max_create_revision: int) -> rpc_pb2.ResponseHeader:
    """Waits until no key under ``prefix`` created at or before ``max_create_revision`` is left."""
    while True:
        response = server.range(
            rpc_pb2.RangeRequest(
                key=prefix,
                range_end=prefix_end(prefix),
                sort_order=rpc_pb2.RangeRequest.DESCEND,
                sort_target=rpc_pb2.RangeRequest.CREATE,
                max_create_revision=max_create_revision,
                limit=1,
            )
        )
        if not response.kvs:
            return response.header
        await wait_delete(server, response.kvs[0].key, response.header.revision)


async def wait_delete(server, key: bytes, revision: int) -> None:
    async with internal_watch.watch(server, key, None, revision) as responses:
        async for response in responses:
            if response.compact_revision:
                return
            if any(e.type == kv_pb2.Event.DELETE for e in response.events):
                return


async def lock(server, name: bytes, lease_id: int) -> tuple[rpc_pb2.ResponseHeader, bytes]:
    """etcd's Mutex.Lock on a session of ``lease_id``: returns the header and the ownership key."""
    lease_id = await session_lease(server, lease_id)
    prefix = name + b"/"
    my_key = prefix + f"{lease_id:x}".encode()
    owner = RequestOp(
        request_range=rpc_pb2.RangeRequest(
            key=prefix,
            range_end=prefix_end(prefix),
            sort_order=rpc_pb2.RangeRequest.ASCEND,
            sort_target=rpc_pb2.RangeRequest.CREATE,
            limit=1,
        )
    )
    response = await create_own_key(
        server,
        rpc_pb2.TxnRequest(
            compare=[Compare(key=my_key, target=Compare.CREATE, result=Compare.EQUAL, create_revision=0)],
            success=[RequestOp(request_put=rpc_pb2.PutRequest(key=my_key, lease=lease_id)), owner],
            failure=[RequestOp(request_range=rpc_pb2.RangeRequest(key=my_key)), owner],
        ),
        my_key,
    )
    my_rev = response.header.revision
    if not response.succeeded:
        my_rev = response.responses[0].response_range.kvs[0].create_revision
    owners = response.responses[1].response_range.kvs
    if not owners or owners[0].create_revision == my_rev:
        return response.header, my_key
    try:
        header = await wait_deletes(server, prefix, my_rev - 1)
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
            await unlock(server, my_key)
        raise
    server.fill_header(header)
    return header, my_key


async def unlock(server, key: bytes) -> rpc_pb2.DeleteRangeResponse:
    return await server.propose(_delete(key))


async def campaign(server, name: bytes, lease_id: int, value: bytes) -> tuple[rpc_pb2.ResponseHeader, bytes, int]:
    """etcd's Election.Campaign: (header, leader key, leader revision) once this session leads."""
    prefix = name + b"/"
    key = prefix + f"{lease_id:x}".encode()
    response = await create_own_key(
        server,
        rpc_pb2.TxnRequest(
            compare=[Compare(key=key, target=Compare.CREATE, result=Compare.EQUAL, create_revision=0)],
            success=[RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease_id))],
            failure=[RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
        ),
        key,
    )
    leader_rev = response.header.revision
    if not response.succeeded:
        kv = response.responses[0].response_range.kvs[0]
        leader_rev = kv.create_revision
        if kv.value != value:
            try:
                await proclaim(server, key, leader_rev, value)
            except EtcdError:
                await resign(server, key, leader_rev)
                raise
    try:
        await wait_deletes(server, prefix, leader_rev - 1)
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
            await resign(server, key, leader_rev)
        raise
    return response.header, key, leader_rev


def _guard(key: bytes, rev: int) -> list[rpc_pb2.Compare]:
    return [Compare(key=key, target=Compare.CREATE, result=Compare.EQUAL, create_revision=rev)]


async def proclaim(server, key: bytes, rev: int, value: bytes) -> rpc_pb2.ResponseHeader:
    response = await txn(
        server,
        rpc_pb2.TxnRequest(
            compare=_guard(key, rev),
            success=[RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, ignore_lease=True))],
        ),
    )
    if not response.succeeded:
        raise ERR_ELECTION_NOT_LEADER
    return response.header


async def resign(server, key: bytes, rev: int) -> rpc_pb2.ResponseHeader:
    response = await txn(
        server,
        rpc_pb2.TxnRequest(
            compare=_guard(key, rev), success=[RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))]
        ),
    )
    return response.header


def leader(server, name: bytes) -> rpc_pb2.RangeResponse:
    response = first_created(server, name + b"/")
    if not response.kvs:
        raise ERR_ELECTION_NO_LEADER
    return response


async def observe(server, name: bytes) -> AsyncIterator[tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue]]:
    """Every leader, and every value it proclaims, as etcd's Election.Observe reports them."""
    prefix = name + b"/"
    while True:
        response = first_created(server, prefix)
        if response.kvs:
            header, kv = response.header, response.kvs[0]
        else:
            header, kv = await _first_put(server, prefix, response.header.revision)
        yield header, kv
        async with internal_watch.watch(server, kv.key, None, header.revision + 1) as responses:
            deleted = False
            async for watch_response in responses:
                for event in watch_response.events:
                    if event.type == kv_pb2.Event.DELETE:
                        deleted = True
                        break
                    event_header = server.header()
                    event_header.revision = watch_response.header.revision
                    yield event_header, event.kv
                if deleted or watch_response.compact_revision:
                    break


async def _first_put(server, prefix: bytes, revision: int) -> tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue]:
    async with internal_watch.watch(server, prefix, prefix_end(prefix), revision) as responses:
        async for response in responses:
            for event in response.events:
                if event.type == kv_pb2.Event.PUT:
                    header = server.header()
                    header.revision = event.kv.mod_revision
                    return header, event.kv
    raise errors.ERR_STOPPED
