"""etcdserverpb.Cluster: the membership as this member applied it, and changes to it through the log
(etcdx/server/membership.py), with etcd's checks and errors. Every response waits until this member applied
the change; its members are the membership then."""

from __future__ import annotations

import time

import trio

from etcdx.api.grpc.codec import decode
from etcdx.net.grpc_server import RpcContext, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server.membership import ChangeKind, check_urls, new_member_id
from etcdx.server.server import EtcdServer

HEALTH_INTERVAL = 5.0
"""etcd's HealthInterval: a peer counts as connected for a membership change once connected this long."""


class ClusterService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict[str, UnaryMethod]:
        prefix = "/etcdserverpb.Cluster/"
        return {
            prefix + "MemberList": UnaryMethod(self.member_list),
            prefix + "MemberAdd": UnaryMethod(self.member_add),
            prefix + "MemberRemove": UnaryMethod(self.member_remove),
            prefix + "MemberUpdate": UnaryMethod(self.member_update),
            prefix + "MemberPromote": UnaryMethod(self.member_promote),
        }

    def _header(self) -> rpc_pb2.ResponseHeader:
        header = rpc_pb2.ResponseHeader()
        self._server.fill_identity(header)  # etcd's Cluster responses carry no revision
        return header

    def checks(self) -> tuple[int, set[int], bool]:
        """(this member's id, the peers connected for HEALTH_INTERVAL at least, --strict-reconfig-check) for
        membership.check_* (etcd's isConnectedFullySince)."""
        server = self._server
        transport = server.transport
        connected = set()
        if transport is not None:
            for peer in transport.peer_ids():
                since = transport.active_since(peer)
                if since is not None and since <= trio.current_time() - HEALTH_INTERVAL:
                    connected.add(peer)
        return server.member_id, connected, server.settings.strict_reconfig_check

    async def member_list(self, data: bytes, ctx: RpcContext) -> bytes:
        decode(rpc_pb2.MemberListRequest, data)
        members = self._server.members
        return rpc_pb2.MemberListResponse(header=self._header(), members=members).SerializeToString()

    async def add(self, urls: list[str], is_learner: bool = False) -> tuple[rpc_pb2.Member, list[rpc_pb2.Member]]:
        """Adds a member with ``urls`` (etcd's checks first); returns it and the members once applied here."""
        check_urls(urls)
        member = rpc_pb2.Member(ID=new_member_id(urls, int(time.time())), peerURLs=urls, isLearner=is_learner)
        self._server.membership.check_add(member, *self.checks())
        return member, await self._server.change_membership(ChangeKind.ADD, member)

    async def remove(self, member_id: int) -> list[rpc_pb2.Member]:
        self._server.membership.check_remove(member_id, *self.checks())
        return await self._server.change_membership(ChangeKind.REMOVE, rpc_pb2.Member(ID=member_id))

    async def update(self, member_id: int, urls: list[str]) -> list[rpc_pb2.Member]:
        check_urls(urls)
        member = rpc_pb2.Member(ID=member_id, peerURLs=urls)
        self._server.membership.validate_update(member)
        return await self._server.change_membership(ChangeKind.UPDATE_PEER_URLS, member)

    async def member_add(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.MemberAddRequest, data)
        member, members = await self.add(list(request.peerURLs), request.isLearner)
        return rpc_pb2.MemberAddResponse(header=self._header(), member=member, members=members).SerializeToString()

    async def member_remove(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.MemberRemoveRequest, data)
        members = await self.remove(request.ID)
        return rpc_pb2.MemberRemoveResponse(header=self._header(), members=members).SerializeToString()

    async def member_update(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.MemberUpdateRequest, data)
        members = await self.update(request.ID, list(request.peerURLs))
        return rpc_pb2.MemberUpdateResponse(header=self._header(), members=members).SerializeToString()

    async def member_promote(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.MemberPromoteRequest, data)
        self._server.membership.check_promote(request.ID, *self.checks())
        members = await self._server.promote_member(request.ID)
        return rpc_pb2.MemberPromoteResponse(header=self._header(), members=members).SerializeToString()
