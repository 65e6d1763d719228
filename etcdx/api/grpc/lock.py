"""v3lockpb.Lock: etcd's mutex recipe served by the server itself."""

from __future__ import annotations

from etcdx import errors
from etcdx.api.grpc.auth_gate import check_read
from etcdx.api.grpc.codec import decode
from etcdx.api.grpc.recipe_errors import as_recipe_errors
from etcdx.mvcc.keys import prefix_end
from etcdx.net.grpc_server import RpcContext, UnaryMethod
from etcdx.pb.v3lockpb import v3lock_pb2
from etcdx.server import concurrency
from etcdx.server.server import EtcdServer


class LockService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict[str, UnaryMethod]:
        return {"/v3lockpb.Lock/Lock": UnaryMethod(self.lock), "/v3lockpb.Lock/Unlock": UnaryMethod(self.unlock)}

    async def lock(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(v3lock_pb2.LockRequest, data)
        with as_recipe_errors():
            prefix = request.name + b"/"
            check_read(self._server, prefix, prefix_end(prefix))  # the recipe reads the waiters under it
            header, key = await concurrency.lock(self._server, request.name, request.lease)
        return v3lock_pb2.LockResponse(header=header, key=key).SerializeToString()

    async def unlock(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(v3lock_pb2.UnlockRequest, data)
        with as_recipe_errors():
            if not request.key:
                raise errors.ERR_EMPTY_KEY  # the KV API's check, which the recipe's Delete meets in etcd
            response = await concurrency.unlock(self._server, request.key)
        return v3lock_pb2.UnlockResponse(header=response.header).SerializeToString()
