"""grpc.health.v1.Health: overall status SERVING for service "" (as etcd registers it)."""

from __future__ import annotations

import trio

from etcdx.api.grpc.codec import decode
from etcdx.errors import StatusCode, etcd_error
from etcdx.net.grpc_server import RpcContext, Send, ServerStreamMethod, UnaryMethod
from etcdx.pb.grpc.health.v1 import health_pb2

_SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING).SerializeToString()
_UNKNOWN_SERVICE = etcd_error(StatusCode.NOT_FOUND, "unknown service")


class HealthService:
    def methods(self) -> dict[str, UnaryMethod | ServerStreamMethod]:
        return {
            "/grpc.health.v1.Health/Check": UnaryMethod(self.check),
            "/grpc.health.v1.Health/Watch": ServerStreamMethod(self.watch),
        }

    async def check(self, data: bytes, ctx: RpcContext) -> bytes:
        if decode(health_pb2.HealthCheckRequest, data).service:
            raise _UNKNOWN_SERVICE
        return _SERVING

    async def watch(self, data: bytes, ctx: RpcContext, send: Send) -> None:
        if decode(health_pb2.HealthCheckRequest, data).service:
            await send(
                health_pb2.HealthCheckResponse(
                    status=health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
                ).SerializeToString()
            )
        else:
            await send(_SERVING)
        await trio.sleep_forever()
