"""etcdserverpb.KV: validate as etcd's API layer does, then read from or propose to the server."""

from __future__ import annotations

from google.protobuf.message import Message

from etcdx.api.grpc import kv_checks
from etcdx.api.grpc.auth_gate import check_read, check_read_txn
from etcdx.api.grpc.codec import decode
from etcdx.errors import EtcdError
from etcdx.net.grpc_server import DeferredUnaryMethod, InlineUnaryMethod, Reply, RpcContext
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server import quota
from etcdx.server.server import EtcdServer


class KVService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server
        self._max_txn_ops = server.settings.max_txn_ops

    def methods(self) -> dict[str, InlineUnaryMethod | DeferredUnaryMethod]:
        return {
            "/etcdserverpb.KV/Range": DeferredUnaryMethod(self.range),
            "/etcdserverpb.KV/Put": DeferredUnaryMethod(self.put),
            "/etcdserverpb.KV/DeleteRange": DeferredUnaryMethod(self.delete_range),
            "/etcdserverpb.KV/Txn": DeferredUnaryMethod(self.txn),
            "/etcdserverpb.KV/Compact": DeferredUnaryMethod(self.compact),
        }

    def range(self, data: bytes, ctx: RpcContext, reply: Reply) -> bytes | None:
        """Served from the applied state, encoded from the stored KeyValue bytes where the store can
        (EtcdServer.range_encoded): a serializable range at once, a linearizable one once a ReadIndex says
        the applied state covers every write committed before it arrived."""
        request = decode(rpc_pb2.RangeRequest, data)
        kv_checks.check_range(request)
        server = self._server
        if server.auth.enabled:
            check_read(server, request.key, request.range_end)
        if request.serializable or server.can_read_now():
            return self._server.range_encoded(request)

        def serve(error: EtcdError | None) -> None:
            if error is None:
                try:
                    reply(self._server.range_encoded(request))
                except EtcdError as exc:
                    reply(exc)
            else:
                reply(error)

        self._server.linearizable_read_nowait(serve)
        return None

    # Writes are proposed without a task of their own: the reply is sent from the apply of their entry.

    def put(self, data: bytes, ctx: RpcContext, reply: Reply) -> None:
        request = decode(rpc_pb2.PutRequest, data)
        if self._server.check_quota_nowait(quota.put_cost(request), reply):
            kv_checks.check_put(request)
            self._propose("put", request, data, reply)

    def delete_range(self, data: bytes, ctx: RpcContext, reply: Reply) -> None:
        request = decode(rpc_pb2.DeleteRangeRequest, data)
        kv_checks.check_delete_range(request)
        self._propose("delete_range", request, data, reply)

    def txn(self, data: bytes, ctx: RpcContext, reply: Reply) -> None:
        request = decode(rpc_pb2.TxnRequest, data)
        outline = kv_checks.outline_txn_bytes(data, request, self._max_txn_ops)
        if outline.read_only:
            # As etcd: served outside the log; it costs no quota, so no quota check can refuse it. Linearizable
            # (through ReadIndex) unless every range in it is serializable.
            if outline.error is not None:
                raise outline.error
            check_read_txn(self._server, request)

            def serve(error: EtcdError | None) -> None:
                if error is None:
                    try:
                        reply(self._server.read_txn(request).SerializeToString())
                    except EtcdError as exc:
                        reply(exc)
                else:
                    reply(error)

            if _is_serializable(request) or self._server.can_read_now():
                serve(None)
            else:
                self._server.linearizable_read_nowait(serve)
        elif self._server.check_quota_nowait(outline.cost, reply):
            if outline.error is not None:
                raise outline.error
            self._propose("txn", request, data, reply)

    def compact(self, data: bytes, ctx: RpcContext, reply: Reply) -> None:
        request = decode(rpc_pb2.CompactionRequest, data)
        self._server.propose_nowait(InternalRequest(compaction=request), _answering(reply))

    def _propose(self, field: str, request: Message, data: bytes, reply: Reply) -> None:
        """Proposes a client's write, parsed as ``request`` from ``data`` (embedded in the entry as it came)."""
        self._server.propose_client_nowait(field, request, data, _answering(reply))


def _answering(reply: Reply):
    """A proposal's on_done that replies with the response encoded, or with the EtcdError."""

    def done(result: Message | EtcdError) -> None:
        reply(result if isinstance(result, EtcdError) else result.SerializeToString())

    return done


def _is_serializable(request: rpc_pb2.TxnRequest) -> bool:
    """etcd's isTxnSerializable: every op of both branches is a serializable range (a nested txn is not)."""
    return all(
        op.WhichOneof("request") == "request_range" and op.request_range.serializable
        for op in (*request.success, *request.failure)
    )
