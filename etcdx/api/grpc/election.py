"""v3electionpb.Election: etcd's election recipe served by the server itself."""

from __future__ import annotations

import contextlib

from etcdx import errors
from etcdx.api.grpc.auth_gate import check_read
from etcdx.api.grpc.codec import decode
from etcdx.api.grpc.recipe_errors import as_recipe_errors
from etcdx.errors import StatusCode, etcd_error
from etcdx.mvcc.keys import prefix_end
from etcdx.net.grpc_server import RpcContext, Send, ServerStreamMethod, UnaryMethod
from etcdx.pb.v3electionpb import v3election_pb2 as pb
from etcdx.server import concurrency
from etcdx.server.server import EtcdServer

ERR_MISSING_LEADER = etcd_error(StatusCode.UNKNOWN, '"leader" field must be provided')


class ElectionService:
    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def methods(self) -> dict:
        p = "/v3electionpb.Election/"
        return {
            p + "Campaign": UnaryMethod(self.campaign),
            p + "Proclaim": UnaryMethod(self.proclaim),
            p + "Leader": UnaryMethod(self.leader),
            p + "Observe": ServerStreamMethod(self.observe),
            p + "Resign": UnaryMethod(self.resign),
        }

    async def campaign(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(pb.CampaignRequest, data)
        with as_recipe_errors():
            _check_read_candidates(self._server, request.name)
            lease_id = await concurrency.session_lease(self._server, request.lease)
            header, key, rev = await concurrency.campaign(self._server, request.name, lease_id, request.value)
        leader = pb.LeaderKey(name=request.name, key=key, rev=rev, lease=lease_id)
        return pb.CampaignResponse(header=header, leader=leader).SerializeToString()

    async def proclaim(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(pb.ProclaimRequest, data)
        if not request.HasField("leader"):
            raise ERR_MISSING_LEADER
        with as_recipe_errors():
            if not request.leader.key:
                raise errors.ERR_EMPTY_KEY  # the KV API's check, which the recipe's Txn meets in etcd
            header = await concurrency.proclaim(self._server, request.leader.key, request.leader.rev, request.value)
        return pb.ProclaimResponse(header=header).SerializeToString()

    async def leader(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(pb.LeaderRequest, data)
        with as_recipe_errors():
            _check_read_candidates(self._server, request.name)
            response = concurrency.leader(self._server, request.name)
        return pb.LeaderResponse(header=response.header, kv=response.kvs[0]).SerializeToString()

    async def observe(self, data: bytes, ctx: RpcContext, send: Send) -> None:
        request = decode(pb.LeaderRequest, data)
        with as_recipe_errors():
            _check_read_candidates(self._server, request.name)
        async with contextlib.aclosing(concurrency.observe(self._server, request.name)) as leaders:
            async for header, kv in leaders:
                self._server.fill_identity(header)
                await send(pb.LeaderResponse(header=header, kv=kv).SerializeToString())

    async def resign(self, data: bytes, ctx: RpcContext) -> bytes:
        request = decode(pb.ResignRequest, data)
        if not request.HasField("leader"):
            raise ERR_MISSING_LEADER
        with as_recipe_errors():
            if not request.leader.key:
                raise errors.ERR_EMPTY_KEY  # the KV API's check, which the recipe's Txn meets in etcd
            header = await concurrency.resign(self._server, request.leader.key, request.leader.rev)
        return pb.ResignResponse(header=header).SerializeToString()


def _check_read_candidates(server: EtcdServer, name: bytes) -> None:
    """The caller may read the election's candidates (the recipe reads every key under "<name>/")."""
    prefix = name + b"/"
    check_read(server, prefix, prefix_end(prefix))
