"""What the member serves its read workers on its private unix socket, beside the full client API.

BARRIER_PATH: a worker's linearizable-read barrier. The member waits until a read served now would be
linearizable (its ReadIndex read: every write acknowledged before the call is applied), commits the batch
transaction (a worker sees only committed state; the member otherwise commits every --backend-batch-interval)
and answers its response header: cluster id, member id, raft term, and the revision the worker's snapshot must
reach. A learner answers UNAVAILABLE (it serves no linearizable read; the worker then relays the read, and the
member's own gate refuses it with etcd's text).
"""

from __future__ import annotations

from etcdx.errors import EtcdError, StatusCode
from etcdx.net.grpc_server import DeferredUnaryMethod, Method, Reply, Resolver, RpcContext
from etcdx.server.server import EtcdServer

BARRIER_PATH = "/etcdx.worker.Member/Barrier"


def barrier(server: EtcdServer) -> DeferredUnaryMethod:
    """No task per barrier: the answer is given when the member's ReadIndex read completes (at once on a member
    that is the only voter), in whatever task completes it."""

    def handler(data: bytes, ctx: RpcContext, reply: Reply) -> None:
        if server.is_learner:
            raise EtcdError(StatusCode.UNAVAILABLE, "etcdx: a learner serves no linearizable read")

        def done(error: EtcdError | None) -> None:
            if error is not None:
                reply(error)
                return
            try:
                server.commit_for_readers()
            except Exception as exc:  # the member stops (its commit failed): the worker relays the read
                reply(EtcdError(StatusCode.UNAVAILABLE, f"etcdx: the member cannot commit: {exc}"))
                return
            reply(server.header().SerializeToString())

        server.linearizable_read_nowait(done)

    return DeferredUnaryMethod(handler)


def with_barrier(server: EtcdServer, resolve: Resolver) -> Resolver:
    """``resolve`` plus BARRIER_PATH: the private socket's resolver."""
    method = barrier(server)

    def resolve_internal(path: str) -> Method | None:
        return method if path == BARRIER_PATH else resolve(path)

    return resolve_internal
