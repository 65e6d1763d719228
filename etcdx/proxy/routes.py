"""The grpc-proxy's method table: KV and Watch by their own services (cache, coalescing, namespace), the
rest of etcd's API forwarded as bytes (forward.py), LeaseTimeToLive through the namespace."""

from __future__ import annotations

from etcdx.net.grpc_server import Method, RpcContext, UnaryMethod
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.proxy import forward
from etcdx.proxy.kv_proxy import KVProxy
from etcdx.proxy.namespace import Namespace
from etcdx.proxy.range_cache import RangeCache
from etcdx.proxy.upstream import Upstream
from etcdx.proxy.watch_broadcast import WatchHub
from etcdx.proxy.watch_proxy import WatchProxy

UNARY = (
    "/etcdserverpb.Lease/LeaseGrant",
    "/etcdserverpb.Lease/LeaseRevoke",
    "/etcdserverpb.Lease/LeaseLeases",
    "/etcdserverpb.Cluster/MemberAdd",
    "/etcdserverpb.Cluster/MemberRemove",
    "/etcdserverpb.Cluster/MemberUpdate",
    "/etcdserverpb.Cluster/MemberPromote",
    "/etcdserverpb.Cluster/MemberList",
    "/etcdserverpb.Maintenance/Alarm",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Defragment",
    "/etcdserverpb.Maintenance/Hash",
    "/etcdserverpb.Maintenance/HashKV",
    "/etcdserverpb.Maintenance/MoveLeader",
    "/etcdserverpb.Maintenance/Downgrade",
    "/etcdserverpb.Auth/AuthEnable",
    "/etcdserverpb.Auth/AuthDisable",
    "/etcdserverpb.Auth/AuthStatus",
    "/etcdserverpb.Auth/Authenticate",
    "/etcdserverpb.Auth/UserAdd",
    "/etcdserverpb.Auth/UserGet",
    "/etcdserverpb.Auth/UserList",
    "/etcdserverpb.Auth/UserDelete",
    "/etcdserverpb.Auth/UserChangePassword",
    "/etcdserverpb.Auth/UserGrantRole",
    "/etcdserverpb.Auth/UserRevokeRole",
    "/etcdserverpb.Auth/RoleAdd",
    "/etcdserverpb.Auth/RoleGet",
    "/etcdserverpb.Auth/RoleList",
    "/etcdserverpb.Auth/RoleDelete",
    "/etcdserverpb.Auth/RoleGrantPermission",
    "/etcdserverpb.Auth/RoleRevokePermission",
    "/v3lockpb.Lock/Lock",
    "/v3lockpb.Lock/Unlock",
    "/v3electionpb.Election/Campaign",
    "/v3electionpb.Election/Proclaim",
    "/v3electionpb.Election/Leader",
    "/v3electionpb.Election/Resign",
    "/grpc.health.v1.Health/Check",
)
SERVER_STREAMS = (
    "/etcdserverpb.Maintenance/Snapshot",
    "/v3electionpb.Election/Observe",
    "/grpc.health.v1.Health/Watch",
)
BIDI_STREAMS = ("/etcdserverpb.Lease/LeaseKeepAlive",)
_TTL = "/etcdserverpb.Lease/LeaseTimeToLive"


def build_routes(upstream: Upstream, hub: WatchHub, cache: RangeCache, namespace: Namespace) -> dict[str, Method]:
    routes: dict[str, Method] = {}
    routes.update((path, forward.unary(upstream, path)) for path in UNARY)
    routes.update((path, forward.server_stream(upstream, path)) for path in SERVER_STREAMS)
    routes.update((path, forward.bidi_stream(upstream, path)) for path in BIDI_STREAMS)
    routes.update(KVProxy(upstream, cache, namespace).methods())
    routes.update(WatchProxy(hub, namespace).methods())

    async def time_to_live(data: bytes, ctx: RpcContext) -> bytes:
        reply = await upstream.unary(_TTL, data, forward.upstream_metadata(ctx))
        if not namespace:
            return reply
        response = rpc_pb2.LeaseTimeToLiveResponse.FromString(reply)
        namespace.lease_ttl_response(response)
        return response.SerializeToString()

    routes[_TTL] = UnaryMethod(time_to_live)
    return routes
