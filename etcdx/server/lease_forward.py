"""Lease keep-alives and time-to-live are the leader's: its lessor holds the real expiries. A member that does
not lead forwards them to the leader over the peer transport (PeerTransport.call), as etcd forwards
LeaseRenew and LeaseTimeToLive over its peer HTTP, and the leader answers from its lessor.

Contracts (etcd 3.5's LeaseRenew / LeaseTimeToLive):
- On the leader both are served from its lessor: a renewal answers the granted TTL (0 for a lease unknown or
  expired) once the leader has applied all it had committed (etcd's waitAppliedIndex, at most 1 s), a
  time-to-live answers at once, TTL -1 for an unknown lease.
- Elsewhere the call goes to the member this one follows, and is tried again (every RETRY_PAUSE) while
  the leader cannot be reached or no longer leads, until the request timeout (5 s + 2 x election timeout)
  ends it: "etcdserver: no leader" if no leader was known then, else "etcdserver: request timed out".
  A member that becomes the leader meanwhile serves the request itself.
- A forwarded time-to-live keeps the leader's answer (its revision, TTLs and keys); the header's member,
  cluster and term are this member's, as etcd's API layer fills them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from google.protobuf.message import DecodeError

from etcdx import errors
from etcdx.log import get_logger
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.peer.transport import PeerCallFailed

if TYPE_CHECKING:
    from etcdx.server.server import EtcdServer

log = get_logger("etcdx.server.lease")

RENEW = "lease_renew"
TIME_TO_LIVE = "lease_time_to_live"
METHODS = frozenset({RENEW, TIME_TO_LIVE})
RETRY_PAUSE = 0.05
APPLY_WAIT = 1.0  # etcd's applyTimeout
APPLY_POLL = 0.002
CALL_TIMEOUT = 1.0
"""Seconds one forwarded call may take before it is tried again (etcd bounds each by its request timeout)."""


async def renew(server: EtcdServer, lease_id: int) -> int:
    """A keep-alive of ``lease_id``: the TTL it was renewed for, 0 if the lease is unknown or expired."""
    data = await forward(server, RENEW, rpc_pb2.LeaseKeepAliveRequest(ID=lease_id).SerializeToString())
    if data is None:
        return await _renew_here(server, lease_id)
    return _decode(rpc_pb2.LeaseKeepAliveResponse, data).TTL


async def time_to_live(server: EtcdServer, request: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
    """The lease's remaining and granted TTL (and keys, if asked) as the leader's lessor has them."""
    data = await forward(server, TIME_TO_LIVE, request.SerializeToString())
    if data is None:
        return server.local_lease_time_to_live(request)
    response = _decode(rpc_pb2.LeaseTimeToLiveResponse, data)
    server.fill_identity(response.header)
    return response


async def serve(server: EtcdServer, method: str, data: bytes) -> bytes:
    """The leader's side of a forwarded call: "etcdserver: not leader" if this member no longer leads (the
    caller tries again)."""
    if not server.is_leader:
        raise errors.ERR_NOT_LEADER
    if method == RENEW:
        request = _decode(rpc_pb2.LeaseKeepAliveRequest, data)
        response = rpc_pb2.LeaseKeepAliveResponse(ID=request.ID, TTL=await _renew_here(server, request.ID))
        return response.SerializeToString()
    request = _decode(rpc_pb2.LeaseTimeToLiveRequest, data)
    return server.local_lease_time_to_live(request).SerializeToString()


async def _renew_here(server: EtcdServer, lease_id: int) -> int:
    """The leader's renewal, once it has applied everything committed when it was asked (etcd's
    waitAppliedIndex): a grant a follower already acknowledged may not be applied here yet."""
    committed = server.committed_index
    if server.applied_index < committed:
        with trio.move_on_after(APPLY_WAIT) as waited:
            while server.applied_index < committed:
                await trio.sleep(APPLY_POLL)
        if waited.cancelled_caught:
            raise errors.ERR_TIMEOUT_WAIT_APPLIED_INDEX
    await server.clear_lease_checkpoint(lease_id)
    return server.lessor.renew(lease_id)


def _decode(message_type, data: bytes):
    try:
        return message_type.FromString(data)
    except DecodeError:
        raise errors.EtcdError(errors.StatusCode.INTERNAL, f"malformed {message_type.__name__} from a peer") from None


async def forward(server: EtcdServer, method: str, request: bytes, call_timeout: float = CALL_TIMEOUT) -> bytes | None:
    """The leader's answer bytes to ``method``, or None once this member leads (it serves the request itself);
    raises as the module docstring says. Each call may take ``call_timeout`` seconds before it is tried again
    (a call that must not run twice, as a forwarded MemberPromote, gives the request timeout)."""
    deadline = trio.current_time() + server.request_timeout
    leader_seen = False
    while trio.current_time() < deadline:
        if server.is_leader:
            return None
        leader = server.leader_id
        if leader and server.transport is not None:
            leader_seen = True
            try:
                timeout = min(call_timeout, max(deadline - trio.current_time(), 0.001))
                return await server.transport.call(leader, method, request, timeout)
            except PeerCallFailed as exc:
                log.debug("forwarding to the leader failed, retrying", method=method, error=str(exc))
            except errors.EtcdError as exc:
                if exc.message != errors.ERR_NOT_LEADER.message:
                    raise
                # it lost the lead meanwhile: ask the next one
        await trio.sleep(RETRY_PAUSE)
    raise errors.ERR_TIMEOUT if leader_seen else errors.ERR_NO_LEADER
