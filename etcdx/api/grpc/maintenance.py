"""etcdserverpb.Maintenance: what a single member can answer so far (Status, Alarm, Defragment)."""

from __future__ import annotations

from etcdx.api.grpc.codec import decode
from etcdx.mvcc.alarms import alarm_name, check_alarm_request
from etcdx.net.grpc_server import RpcContext, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.server import EtcdServer
from etcdx.version import SERVER_VERSION


class MaintenanceService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict[str, UnaryMethod]:
        return {
            "/etcdserverpb.Maintenance/Status": UnaryMethod(self.status),
            "/etcdserverpb.Maintenance/Alarm": UnaryMethod(self.alarm),
            "/etcdserverpb.Maintenance/Defragment": UnaryMethod(self.defragment),
        }

    async def status(self, data: bytes, ctx: RpcContext) -> bytes:
        decode(rpc_pb2.StatusRequest, data)
        server = self._server
        return rpc_pb2.StatusResponse(
            header=server.header(),
            version=SERVER_VERSION,
            dbSize=server.db_size_bytes,
            dbSizeInUse=server.db_size_in_use_bytes,
            leader=server.leader_id,
            raftIndex=server.committed_index,
            raftTerm=server.raft_term,
            raftAppliedIndex=server.applied_index,
            errors=[f"memberID:{m} alarm:{alarm_name(a)} " for m, a in server.alarms.list()],
        ).SerializeToString()

    async def alarm(self, data: bytes, ctx: RpcContext) -> bytes:
        """GET lists alarms (filtered by member and type) from the applied state; ACTIVATE and DEACTIVATE go
        through the log, as etcd's do, and answer what they changed. What etcd cannot answer (an unknown
        action, ACTIVATE of an unknown type) is refused here, before the log (check_alarm_request)."""
        request = decode(rpc_pb2.AlarmRequest, data)
        check_alarm_request(request)
        if request.action in (rpc_pb2.AlarmRequest.ACTIVATE, rpc_pb2.AlarmRequest.DEACTIVATE):
            response = await self._server.propose(InternalRequest(alarm=request))
            return response.SerializeToString()
        response = rpc_pb2.AlarmResponse()
        self._server.fill_header(response.header)
        listed = self._server.alarms.list(request.memberID, request.alarm)
        response.alarms.extend(rpc_pb2.AlarmMember(memberID=m, alarm=a) for m, a in listed)
        return response.SerializeToString()

    async def defragment(self, data: bytes, ctx: RpcContext) -> bytes:
        """Shrinks the backend file to the space in use (EtcdServer.defragment); answers, as etcd 3.5 does, an
        empty response (no header)."""
        decode(rpc_pb2.DefragmentRequest, data)
        await self._server.defragment()
        return rpc_pb2.DefragmentResponse().SerializeToString()
