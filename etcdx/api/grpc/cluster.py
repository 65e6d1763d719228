"""etcdserverpb.Cluster: membership as a single member knows it (changes come with Raft)."""

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
        member = rpc_pb2.Member(
            ID=server.member_id,
            name=settings.name,
            peerURLs=list(settings.peer_urls),
            clientURLs=list(settings.client_urls),
        )
        return rpc_pb2.MemberListResponse(header=header, members=[member]).SerializeToString()
