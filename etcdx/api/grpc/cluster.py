"""etcdserverpb.Cluster: the membership as this member knows it: the initial cluster (membership changes
and the other members' published client URLs come with the cluster's member API)."""

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
        members = [
            rpc_pb2.Member(
                ID=member_id,
                name=name,
                peerURLs=list(peer_urls),
                clientURLs=list(settings.client_urls) if member_id == server.member_id else [],
            )
            for member_id, name, peer_urls in settings.initial_members
        ]
        return rpc_pb2.MemberListResponse(header=header, members=members).SerializeToString()
