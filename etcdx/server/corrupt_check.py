"""Corruption checks across members (etcd 3.5's --experimental-initial-corrupt-check and
--experimental-corrupt-check-time): members compare HashKV, the hash of the key table up to a revision.

- Initial check, before this member serves peers or clients: its HashKV at its current revision is compared
  with each peer's HashKV at that revision. A peer with the same compacted revision and another hash is a
  mismatch: start-up fails with "<id> found data inconsistency with peers". A peer that cannot answer (down,
  behind: "future revision", or compacted past the revision) is logged and not counted, as in etcd.
- Periodic check, every --experimental-corrupt-check-time, on the leader only: its HashKV, then each
  follower's at the leader's revision, then a linearizable read and the leader's HashKV again (the leader's
  own state must not have changed under it). A member found inconsistent gets the CORRUPT alarm, raised
  through the log (one alarm per check, for the first member found), after which the cluster refuses writes
  with "etcdserver: corrupt cluster". The log lines are etcd's.

A peer's HashKV travels as a peer call (PeerTransport.call, method HASH_KV).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio
from google.protobuf.message import DecodeError

from etcdx import errors
from etcdx.log import get_logger
from etcdx.mvcc import kv_hash
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.peer.transport import PeerCallFailed
from etcdx.server import caller, metrics

if TYPE_CHECKING:
    from etcdx.server.server import EtcdServer

log = get_logger("etcdx.server.corrupt")

HASH_KV = "hash_kv"


class DataInconsistency(Exception):
    """The initial check found a peer whose data differs from this member's."""


async def hash_kv(server: EtcdServer, revision: int) -> rpc_pb2.HashKVResponse:
    """etcd's HashKV (3.5) on this member: the key table's hash up to ``revision`` (0: the current one), with
    the compacted revision (-1 if never compacted) and the hashed revision; the header's revision is the current
    one. A revision at or below the compacted one is ERR_COMPACTED, one past the current ERR_FUTURE_REV."""
    store = server.store
    async with server.committed_view() as view:
        current, compacted = store.current_revision, store.compact_revision
        if 0 < revision <= compacted:
            raise errors.ERR_COMPACTED
        if revision > current:
            raise errors.ERR_FUTURE_REV
        revision = revision or current
        keep = store.index.keep(revision)
        started = time.perf_counter()
        value = await trio.to_thread.run_sync(kv_hash.kv_hash, view, revision, compacted, keep)
        metrics.HASH_REV_SECONDS.observe(time.perf_counter() - started)
    response = rpc_pb2.HashKVResponse(hash=value, compact_revision=compacted, hash_revision=revision)
    server.fill_header(response.header)
    response.header.revision = current
    return response


async def serve_hash_kv(server: EtcdServer, data: bytes) -> bytes:
    """A peer's HashKV call."""
    try:
        request = rpc_pb2.HashKVRequest.FromString(data)
    except DecodeError:
        raise errors.EtcdError(errors.StatusCode.INTERNAL, "malformed HashKVRequest from a peer") from None
    return (await hash_kv(server, request.revision)).SerializeToString()


async def _peer_hashes(server: EtcdServer, revision: int) -> list[tuple[int, rpc_pb2.HashKVResponse | None, Exception]]:
    """(peer id, its HashKV at ``revision`` or None, the error if none) for every other member, asked at once."""
    results: list = []
    request = rpc_pb2.HashKVRequest(revision=revision).SerializeToString()

    async def ask(peer: int) -> None:
        try:
            data = await server.transport.call(peer, HASH_KV, request, server.request_timeout)
            results.append((peer, rpc_pb2.HashKVResponse.FromString(data), None))
        except (PeerCallFailed, errors.EtcdError, DecodeError) as exc:
            log.warning(
                "failed hash kv request",
                local_member_id=f"{server.member_id:x}",
                requested_revision=revision,
                remote_peer_id=f"{peer:x}",
                error=str(exc),
            )
            results.append((peer, None, exc))

    async with trio.open_nursery() as nursery:
        for member in server.members:
            if server.member_id != member.ID:
                nursery.start_soon(ask, member.ID)
    return sorted(results, key=lambda r: r[0])


async def initial_check(server: EtcdServer) -> None:
    """Raises DataInconsistency if a peer's data differs (see the module docstring)."""
    me = f"{server.member_id:x}"
    log.info("starting initial corruption check", local_member_id=me, timeout=f"{server.request_timeout}s")
    local = await hash_kv(server, 0)
    mismatches = 0
    for peer, response, error in await _peer_hashes(server, local.hash_revision):
        if response is not None:
            fields = dict(
                local_member_id=me,
                local_member_revision=local.hash_revision,
                local_member_compact_revision=local.compact_revision,
                local_member_hash=local.hash,
                remote_peer_id=f"{peer:x}",
                remote_peer_endpoints=[u for m in server.members if peer == m.ID for u in m.peerURLs],
                remote_peer_revision=response.header.revision,
                remote_peer_compact_revision=response.compact_revision,
                remote_peer_hash=response.hash,
            )
            if response.hash != local.hash:
                if response.compact_revision == local.compact_revision:
                    log.warning("found different hash values from remote peer", **fields)
                    mismatches += 1
                else:
                    log.warning("found different compact revision values from remote peer", **fields)
        elif isinstance(error, errors.EtcdError) and error.message == errors.ERR_FUTURE_REV.message:
            log.warning(
                "cannot fetch hash from slow remote peer",
                local_member_id=me,
                local_member_revision=local.hash_revision,
                remote_peer_id=f"{peer:x}",
                error=str(error),
            )
        elif isinstance(error, errors.EtcdError) and error.message == errors.ERR_COMPACTED.message:
            log.warning(
                "cannot fetch hash from remote peer; local member is behind",
                local_member_id=me,
                local_member_revision=local.hash_revision,
                remote_peer_id=f"{peer:x}",
                error=str(error),
            )
    if mismatches:
        raise DataInconsistency(f"{me} found data inconsistency with peers")
    log.info("initial corruption checking passed; no corruption", local_member_id=me)


async def monitor(server: EtcdServer, interval: float) -> None:
    """The periodic check: every ``interval`` seconds, on the leader only."""
    log.info("enabled corruption checking", local_member_id=f"{server.member_id:x}", interval=f"{interval}s")
    while True:
        await trio.sleep(interval)
        if not server.is_leader:
            continue
        try:
            await check_peers(server)
        except (errors.EtcdError, trio.TooSlowError) as exc:
            log.warning("failed to check hash KV", error=str(exc) or repr(exc))


async def check_peers(server: EtcdServer) -> None:
    """One periodic check (etcd's checkHashKV): raises the CORRUPT alarm for the first member found
    inconsistent."""
    first = await hash_kv(server, 0)
    h, rev, crev = first.hash, first.hash_revision, first.compact_revision
    peers = await _peer_hashes(server, rev)
    with trio.fail_after(server.request_timeout):
        await server.linearizable_read()
    second = await hash_kv(server, 0)
    h2, rev2, crev2 = second.hash, second.hash_revision, second.compact_revision
    alarmed: list[int] = []

    def mismatch(member_id: int) -> None:
        if not alarmed:
            alarmed.append(member_id)

    if h2 != h and rev2 == rev and crev == crev2:
        log.warning(
            "found hash mismatch",
            revision_1=rev,
            compact_revision_1=crev,
            hash_1=h,
            revision_2=rev2,
            compact_revision_2=crev2,
            hash_2=h2,
        )
        mismatch(server.member_id)
    checked = 0
    for peer, response, _ in peers:
        if response is None:
            continue
        checked += 1
        peer_id = f"{peer:x}"
        if response.header.revision > rev2:
            log.warning(
                "revision from follower must be less than or equal to leader's",
                leader_revision=rev2,
                follower_revision=response.header.revision,
                follower_peer_id=peer_id,
            )
            mismatch(peer)
        if response.compact_revision > crev2:
            log.warning(
                "compact revision from follower must be less than or equal to leader's",
                leader_compact_revision=crev2,
                follower_compact_revision=response.compact_revision,
                follower_peer_id=peer_id,
            )
            mismatch(peer)
        if response.compact_revision == crev and response.hash != h:
            log.warning(
                "same compact revision then hashes must match",
                leader_compact_revision=crev2,
                leader_hash=h,
                follower_compact_revision=response.compact_revision,
                follower_hash=response.hash,
                follower_peer_id=peer_id,
            )
            mismatch(peer)
    log.info("finished peer corruption check", number_of_peers_checked=checked)
    if alarmed:
        alarm = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=alarmed[0], alarm=rpc_pb2.CORRUPT)
        with caller.as_member():
            await server.propose(InternalRequest(alarm=alarm))
