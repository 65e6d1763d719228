"""What the member serves its read workers on its private unix socket, beside the full client API.

BARRIER_PATH: a worker's linearizable-read barrier. The member waits until a read served now would be
linearizable (its ReadIndex read: every write acknowledged before the call is applied; no wait on the only voter
once its read index is applied, as for its own reads), commits the batch
transaction (a worker sees only committed state; the member otherwise commits every --backend-batch-interval)
and answers its response header: cluster id, member id, raft term, and the revision the worker's snapshot must
reach. If the ReadIndex read fails (request timed out, leader changed), the barrier fails with that error, which
is the answer of every read the barrier covers, as it would be on the member. The member's refusals to run a
barrier start with RELAY_MARK and the worker relays the reads it covers instead: a learner (it serves no
linearizable read; the member's own gate then refuses the read with etcd's text) or a failed commit.

IDENTITY_PATH: the member's response header now, without a read: a worker's idle refresh of the cluster id,
member id and raft term it puts in its answers. It starts no ReadIndex, so an idle worker keeps no read in
flight on the member (a read arriving then would wait for that one to end before its own starts).
"""

from __future__ import annotations

from etcdx.errors import EtcdError, StatusCode
from etcdx.net.grpc_server import DeferredUnaryMethod, InlineUnaryMethod, Method, Reply, Resolver, RpcContext
from etcdx.server.server import EtcdServer
from etcdx.worker.link_frames import BARRIER_PATH, IDENTITY_PATH, RELAY_MARK


def barrier(server: EtcdServer) -> DeferredUnaryMethod:
    """No task per barrier: answered at once when a read served now is linearizable without waiting (the member
    is the only voter and has applied its read index: ``can_read_now``, as for the member's own linearizable
    reads), otherwise when the member's ReadIndex read completes, in whatever task completes it."""

    def answer() -> bytes:
        try:
            server.commit_for_readers()
        except Exception as exc:  # the member stops (its commit failed): the worker relays the read
            raise EtcdError(StatusCode.UNAVAILABLE, f"{RELAY_MARK}the member cannot commit: {exc}") from exc
        return server.header().SerializeToString()

    def handler(data: bytes, ctx: RpcContext, reply: Reply) -> bytes | None:
        if server.is_learner:
            raise EtcdError(StatusCode.UNAVAILABLE, f"{RELAY_MARK}a learner serves no linearizable read")
        if server.can_read_now():
            return answer()

        def done(error: EtcdError | None) -> None:
            if error is not None:
                reply(error)
                return
            try:
                reply(answer())
            except EtcdError as exc:
                reply(exc)

        server.linearizable_read_nowait(done)
        return None

    return DeferredUnaryMethod(handler)


def identity(server: EtcdServer) -> InlineUnaryMethod:
    return InlineUnaryMethod(lambda data, ctx: server.header().SerializeToString())


def with_worker_calls(server: EtcdServer, resolve: Resolver) -> Resolver:
    """``resolve`` plus BARRIER_PATH and IDENTITY_PATH: the private socket's resolver."""
    own = {BARRIER_PATH: barrier(server), IDENTITY_PATH: identity(server)}

    def resolve_internal(path: str) -> Method | None:
        return own.get(path) or resolve(path)

    return resolve_internal
