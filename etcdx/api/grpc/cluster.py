"""etcdserverpb.Cluster: the membership as this member stores it (membership changes and the other members'
published client URLs come with the cluster's member API)."""

from __future__ import annotations

from etcdx.api.grpc.codec import decode
from etcdx.net.grpc_server import RpcContext, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server.server import EtcdServer


class ClusterService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict[str, UnaryMethod]:
        return {"/etcdserverpb.Cluster/MemberList": UnaryMethod(self.member_list)}

    async def member_list(self, data: bytes, ctx: RpcContext) -> bytes:
        decode(rpc_pb2.MemberListRequest, data)
        server = self._server
        settings = server.settings
        header = server.header()
        header.revision = 0  # etcd's Cluster responses carry no revision
        members = []
        for stored in server.members:
            member = rpc_pb2.Member()
            member.CopyFrom(stored)
            if server.member_id == member.ID:
                member.clientURLs[:] = list(settings.client_urls)
            members.append(member)
        return rpc_pb2.MemberListResponse(header=header, members=members).SerializeToString()
