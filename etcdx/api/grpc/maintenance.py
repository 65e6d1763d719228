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
            errors=[f"memberID:{m} alarm:{rpc_pb2.AlarmType.Name(a)} " for m, a in server.alarms.list()],
        ).SerializeToString()

    async def alarm(self, data: bytes, ctx: RpcContext) -> bytes:
        """GET lists alarms (filtered by member and type); DEACTIVATE clears one; ACTIVATE raises one."""
        request = decode(rpc_pb2.AlarmRequest, data)
        alarms = self._server.alarms
        response = rpc_pb2.AlarmResponse()
        if request.action == rpc_pb2.AlarmRequest.GET:
            listed = alarms.list(request.memberID, request.alarm)
        elif request.action == rpc_pb2.AlarmRequest.ACTIVATE:
            alarms.activate(request.memberID, request.alarm)
            listed = [(request.memberID, request.alarm)]
        else:
            cleared = alarms.deactivate(request.memberID, request.alarm)
            listed = [(request.memberID, request.alarm)] if cleared else []
        response.alarms.extend(rpc_pb2.AlarmMember(memberID=m, alarm=a) for m, a in listed)
        return response.SerializeToString()
