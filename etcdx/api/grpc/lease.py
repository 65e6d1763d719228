"""etcdserverpb.Lease: grant and revoke go through the log; keep-alive and time-to-live are the leader's (a
follower forwards them: server/lease_forward.py); the lease list is this member's, as etcd 3.5 serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from etcdx.api.grpc.auth_gate import check_lease_keys
from etcdx.api.grpc.codec import decode
from etcdx.net.grpc_server import BidiStreamMethod, RpcContext, Send, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.server.quota import LEASE_GRANT_COST
from etcdx.server.server import EtcdServer


class LeaseService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict:
        return {
            "/etcdserverpb.Lease/LeaseGrant": UnaryMethod(self.grant),
            "/etcdserverpb.Lease/LeaseRevoke": UnaryMethod(self.revoke),
            "/etcdserverpb.Lease/LeaseKeepAlive": BidiStreamMethod(self.keep_alive),
            "/etcdserverpb.Lease/LeaseTimeToLive": UnaryMethod(self.time_to_live),
            "/etcdserverpb.Lease/LeaseLeases": UnaryMethod(self.leases),
        }

    async def grant(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.LeaseGrantRequest, data)
        await self._server.check_quota(LEASE_GRANT_COST)
        return (await self._server.lease_grant(request)).SerializeToString()

    async def revoke(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.LeaseRevokeRequest, data)
        response = await self._server.propose(InternalRequest(lease_revoke=request))
        return response.SerializeToString()

    async def keep_alive(self, requests: AsyncIterator[bytes], ctx: RpcContext, send: Send) -> None:
        server = self._server
        async for data in requests:
            request = decode(rpc_pb2.LeaseKeepAliveRequest, data)
            check_lease_keys(server, request.ID, time_to_live=False)
            header = server.header()  # captured before the renewal, as etcd does
            ttl = await server.renew_lease(request.ID)
            await send(rpc_pb2.LeaseKeepAliveResponse(header=header, ID=request.ID, TTL=ttl).SerializeToString())

    async def time_to_live(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(rpc_pb2.LeaseTimeToLiveRequest, data)
        check_lease_keys(self._server, request.ID, time_to_live=True, with_keys=request.keys)
        response = await self._server.lease_time_to_live(request)
        return response.SerializeToString()

    async def leases(self, data: bytes, ctx: RpcContext) -> bytes:
        decode(rpc_pb2.LeaseLeasesRequest, data)
        response = rpc_pb2.LeaseLeasesResponse(header=self._server.header())
        response.leases.extend(rpc_pb2.LeaseStatus(ID=i) for i in self._server.lease_ids())
        return response.SerializeToString()
