"""etcdserverpb.Maintenance: what a single member can answer so far (Status, Alarm)."""

from __future__ import annotations

from etcdx.api.grpc.codec import decode
from etcdx.net.grpc_server import RpcContext, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server.server import EtcdServer
from etcdx.version import SERVER_VERSION


class MaintenanceService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict[str, UnaryMethod]:
        return {
            "/etcdserverpb.Maintenance/Status": UnaryMethod(self.status),
            "/etcdserverpb.Maintenance/Alarm": UnaryMethod(self.alarm),
        }

    async def status(self, data: bytes, ctx: RpcContext) -> bytes:
        decode(rpc_pb2.StatusRequest, data)
        server = self._server
        return rpc_pb2.StatusResponse(
            header=server.header(),
            version=SERVER_VERSION,
            dbSize=server.backend.size_bytes,
            dbSizeInUse=server.backend.size_in_use_bytes,
            leader=server.leader_id,
            raftIndex=server.committed_index,
            raftTerm=server.raft_term,
            raftAppliedIndex=server.applied_index,
        ).SerializeToString()

    async def alarm(self, data: bytes, ctx: RpcContext) -> bytes:
        """No alarms exist yet (quota alarms come with the quota); GET answers the empty list."""
        decode(rpc_pb2.AlarmRequest, data)
        return rpc_pb2.AlarmResponse(header=self._server.header()).SerializeToString()
