"""The proxy's KV service: Range through the cache (range_cache.py), writes invalidating it, and every
request and response through the namespace (namespace.py). Upstream errors pass through unchanged."""

from __future__ import annotations

from etcdx.api.grpc.codec import decode
from etcdx.net.grpc_server import RpcContext, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.proxy.forward import credentials, upstream_metadata
from etcdx.proxy.namespace import Namespace
from etcdx.proxy.range_cache import RangeCache
from etcdx.proxy.upstream import Upstream

_KV = "/etcdserverpb.KV/"


class KVProxy:
    def __init__(self, upstream: Upstream, cache: RangeCache, namespace: Namespace) -> None:
        self._upstream = upstream
        self._cache = cache
        self._ns = namespace

    def methods(self) -> dict[str, UnaryMethod]:
        return {
            _KV + "Range": UnaryMethod(self.range),
            _KV + "Put": UnaryMethod(self.put),
            _KV + "DeleteRange": UnaryMethod(self.delete_range),
            _KV + "Txn": UnaryMethod(self.txn),
            _KV + "Compact": UnaryMethod(self.compact),
        }

    async def _call(self, method: str, request, ctx: RpcContext) -> bytes:
        return await self._upstream.unary(_KV + method, request.SerializeToString(), upstream_metadata(ctx))

    async def range(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.RangeRequest, data)
        self._ns.range_request(request)
        caller = credentials(ctx.metadata)
        if request.serializable:
            cached = self._cache.get(request, caller)
            if cached is not None:
                return cached
        reply = await self._call("Range", request, ctx)
        if self._ns:
            response = rpc_pb2.RangeResponse.FromString(reply)
            self._ns.range_response(response)
            reply = response.SerializeToString()
        self._cache.add(request, reply, caller)
        return reply

    async def put(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.PutRequest, data)
        self._ns.put_request(request)
        try:
            reply = await self._call("Put", request, ctx)
        finally:
            self._cache.invalidate(request.key, b"")
        if self._ns:
            response = rpc_pb2.PutResponse.FromString(reply)
            self._ns.put_response(response)
            reply = response.SerializeToString()
        return reply

    async def delete_range(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.DeleteRangeRequest, data)
        self._ns.delete_request(request)
        try:
            reply = await self._call("DeleteRange", request, ctx)
        finally:
            self._cache.invalidate(request.key, request.range_end)
        if self._ns:
            response = rpc_pb2.DeleteRangeResponse.FromString(reply)
            self._ns.delete_response(response)
            reply = response.SerializeToString()
        return reply

    async def txn(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.TxnRequest, data)
        self._ns.txn_request(request)
        try:
            reply = await self._call("Txn", request, ctx)
        finally:
            self._cache.invalidate_txn(request)
        if self._ns:
            response = rpc_pb2.TxnResponse.FromString(reply)
            self._ns.txn_response(response)
            reply = response.SerializeToString()
        return reply

    async def compact(self, data: bytes, ctx: RpcContext) -> bytes:
        try:
            return await self._upstream.unary(_KV + "Compact", data, upstream_metadata(ctx))
        finally:
            self._cache.clear()
