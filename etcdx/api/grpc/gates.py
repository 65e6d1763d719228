"""The gates in front of every route: the learner's (learner_gate.py) outermost, then "require leader"
(leader_gate.py), then auth (auth_gate.py).

The synchronous unary kinds (inline and deferred: every KV call, run once per request in the connection's
reader) get all checks in one wrapper, so a request pays one extra frame rather than three; the task-running
kinds are wrapped by each gate in turn. Either way the order is the same (etcd's): a learner refuses what it
does not serve before anything else, a call that requires a leader is refused "no leader" before its token is
looked at, and the handler runs acting as the call's user.
"""

from __future__ import annotations

from etcdx.api.grpc import auth_gate, leader_gate, learner_gate
from etcdx.net.grpc_server import DeferredUnaryMethod, InlineUnaryMethod, Method, Reply, RpcContext
from etcdx.server import caller
from etcdx.server.server import EtcdServer


def gated(server: EtcdServer, path: str, method: Method) -> Method:
    """``method`` (the handler of ``path``) behind the gates."""
    check_leader, admit, enter, leave = leader_gate.check, auth_gate.admit, caller.enter, caller.leave
    check_learner = learner_gate.check_for(path) or _served
    if isinstance(method, DeferredUnaryMethod):
        deferred_handler = method.handler

        def deferred(data: bytes, ctx: RpcContext, reply: Reply) -> bytes | None:
            if server.is_learner:
                check_learner(data)
            if not server.leader_id:  # the leader gate has nothing to refuse while there is a leader
                check_leader(server, ctx)
            token = enter(admit(server, path, ctx, data) if server.auth.enabled else None)
            try:
                return deferred_handler(data, ctx, reply)  # an answer given at once goes back as it is
            finally:
                leave(token)

        return DeferredUnaryMethod(deferred)
    if isinstance(method, InlineUnaryMethod):
        inline_handler = method.handler

        def inline(data: bytes, ctx: RpcContext) -> bytes:
            if server.is_learner:
                check_learner(data)
            if not server.leader_id:
                check_leader(server, ctx)
            token = enter(admit(server, path, ctx, data) if server.auth.enabled else None)
            try:
                return inline_handler(data, ctx)
            finally:
                leave(token)

        return InlineUnaryMethod(inline)
    return learner_gate.guard(server, path, leader_gate.require_leader(server, auth_gate.guard(server, path, method)))


def _served(data: bytes) -> None:
    """The learner's check for a method it always serves."""
