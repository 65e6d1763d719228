"""etcdserverpb.KV: validate as etcd's API layer does, then read from or propose to the server."""

from __future__ import annotations

from etcdx.api.grpc import kv_checks
from etcdx.api.grpc.codec import decode
from etcdx.net.grpc_server import InlineUnaryMethod, RpcContext, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server import quota
from etcdx.server.server import EtcdServer


class KVService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server
        self._max_txn_ops = server.settings.max_txn_ops

    def methods(self) -> dict[str, UnaryMethod | InlineUnaryMethod]:
        return {
            "/etcdserverpb.KV/Range": InlineUnaryMethod(self.range),
            "/etcdserverpb.KV/Put": UnaryMethod(self.put),
            "/etcdserverpb.KV/DeleteRange": UnaryMethod(self.delete_range),
            "/etcdserverpb.KV/Txn": UnaryMethod(self.txn),
            "/etcdserverpb.KV/Compact": UnaryMethod(self.compact),
        }

    def range(self, data: bytes, ctx: RpcContext) -> bytes:
        """Never waits: reads are served from the applied state (see EtcdServer.range), encoded from the
        stored KeyValue bytes where the store can (EtcdServer.range_encoded)."""
        request = decode(rpc_pb2.RangeRequest, data)
        kv_checks.check_range(request)
        return self._server.range_encoded(request)

    async def put(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.PutRequest, data)
        await self._server.check_quota(quota.put_cost(request))
        kv_checks.check_put(request)
        return await self._propose(InternalRequest(put=request))

    async def delete_range(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.DeleteRangeRequest, data)
        kv_checks.check_delete_range(request)
        return await self._propose(InternalRequest(delete_range=request))

    async def txn(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.TxnRequest, data)
        await self._server.check_quota(quota.txn_cost(request))
        kv_checks.check_txn(request, self._max_txn_ops)
        return await self._propose(InternalRequest(txn=request))

    async def compact(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.CompactionRequest, data)
        return await self._propose(InternalRequest(compaction=request))

    async def _propose(self, request: InternalRequest) -> bytes:
        response = await self._server.propose(request)
        return response.SerializeToString()
