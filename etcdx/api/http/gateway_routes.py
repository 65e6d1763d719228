"""The /v3 gateway's paths (the google.api.http annotations of etcd 3.5.1's rpc.proto, v3lock.proto and
v3election.proto): every one is POST, with the whole request message as its JSON body.

/v3/maintenance/hash is annotated on both Hash and HashKV; etcd's gateway mux serves Hash there, so HashKV has
no path. /v3/kv/lease/* are the 3.4 aliases of /v3/lease/{revoke,timetolive,leases}.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.v3electionpb import v3election_pb2 as election
from etcdx.pb.v3lockpb import v3lock_pb2 as lock


@dataclass(frozen=True)
class Route:
    rpc: str  # the gRPC path of the method the route calls
    request: type[Message]
    response: type[Message]


def _kv(method: str, request, response) -> Route:
    return Route(f"/etcdserverpb.KV/{method}", request, response)


def _lease(method: str, request, response) -> Route:
    return Route(f"/etcdserverpb.Lease/{method}", request, response)


def _cluster(method: str, request, response) -> Route:
    return Route(f"/etcdserverpb.Cluster/{method}", request, response)


def _maintenance(method: str, request, response) -> Route:
    return Route(f"/etcdserverpb.Maintenance/{method}", request, response)


def _auth(method: str, name: str) -> Route:
    return Route(f"/etcdserverpb.Auth/{method}", getattr(pb, f"{name}Request"), getattr(pb, f"{name}Response"))


_REVOKE = _lease("LeaseRevoke", pb.LeaseRevokeRequest, pb.LeaseRevokeResponse)
_TIME_TO_LIVE = _lease("LeaseTimeToLive", pb.LeaseTimeToLiveRequest, pb.LeaseTimeToLiveResponse)
_LEASES = _lease("LeaseLeases", pb.LeaseLeasesRequest, pb.LeaseLeasesResponse)

ROUTES: dict[str, Route] = {
    "/v3/kv/range": _kv("Range", pb.RangeRequest, pb.RangeResponse),
    "/v3/kv/put": _kv("Put", pb.PutRequest, pb.PutResponse),
    "/v3/kv/deleterange": _kv("DeleteRange", pb.DeleteRangeRequest, pb.DeleteRangeResponse),
    "/v3/kv/txn": _kv("Txn", pb.TxnRequest, pb.TxnResponse),
    "/v3/kv/compaction": _kv("Compact", pb.CompactionRequest, pb.CompactionResponse),
    "/v3/watch": Route("/etcdserverpb.Watch/Watch", pb.WatchRequest, pb.WatchResponse),
    "/v3/lease/grant": _lease("LeaseGrant", pb.LeaseGrantRequest, pb.LeaseGrantResponse),
    "/v3/lease/revoke": _REVOKE,
    "/v3/kv/lease/revoke": _REVOKE,
    "/v3/lease/keepalive": _lease("LeaseKeepAlive", pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse),
    "/v3/lease/timetolive": _TIME_TO_LIVE,
    "/v3/kv/lease/timetolive": _TIME_TO_LIVE,
    "/v3/lease/leases": _LEASES,
    "/v3/kv/lease/leases": _LEASES,
    "/v3/cluster/member/add": _cluster("MemberAdd", pb.MemberAddRequest, pb.MemberAddResponse),
    "/v3/cluster/member/remove": _cluster("MemberRemove", pb.MemberRemoveRequest, pb.MemberRemoveResponse),
    "/v3/cluster/member/update": _cluster("MemberUpdate", pb.MemberUpdateRequest, pb.MemberUpdateResponse),
    "/v3/cluster/member/list": _cluster("MemberList", pb.MemberListRequest, pb.MemberListResponse),
    "/v3/cluster/member/promote": _cluster("MemberPromote", pb.MemberPromoteRequest, pb.MemberPromoteResponse),
    "/v3/maintenance/alarm": _maintenance("Alarm", pb.AlarmRequest, pb.AlarmResponse),
    "/v3/maintenance/status": _maintenance("Status", pb.StatusRequest, pb.StatusResponse),
    "/v3/maintenance/defragment": _maintenance("Defragment", pb.DefragmentRequest, pb.DefragmentResponse),
    "/v3/maintenance/hash": _maintenance("Hash", pb.HashRequest, pb.HashResponse),
    "/v3/maintenance/snapshot": _maintenance("Snapshot", pb.SnapshotRequest, pb.SnapshotResponse),
    "/v3/maintenance/transfer-leadership": _maintenance("MoveLeader", pb.MoveLeaderRequest, pb.MoveLeaderResponse),
    "/v3/maintenance/downgrade": _maintenance("Downgrade", pb.DowngradeRequest, pb.DowngradeResponse),
    "/v3/auth/enable": _auth("AuthEnable", "AuthEnable"),
    "/v3/auth/disable": _auth("AuthDisable", "AuthDisable"),
    "/v3/auth/status": _auth("AuthStatus", "AuthStatus"),
    "/v3/auth/authenticate": _auth("Authenticate", "Authenticate"),
    "/v3/auth/user/add": _auth("UserAdd", "AuthUserAdd"),
    "/v3/auth/user/get": _auth("UserGet", "AuthUserGet"),
    "/v3/auth/user/list": _auth("UserList", "AuthUserList"),
    "/v3/auth/user/delete": _auth("UserDelete", "AuthUserDelete"),
    "/v3/auth/user/changepw": _auth("UserChangePassword", "AuthUserChangePassword"),
    "/v3/auth/user/grant": _auth("UserGrantRole", "AuthUserGrantRole"),
    "/v3/auth/user/revoke": _auth("UserRevokeRole", "AuthUserRevokeRole"),
    "/v3/auth/role/add": _auth("RoleAdd", "AuthRoleAdd"),
    "/v3/auth/role/get": _auth("RoleGet", "AuthRoleGet"),
    "/v3/auth/role/list": _auth("RoleList", "AuthRoleList"),
    "/v3/auth/role/delete": _auth("RoleDelete", "AuthRoleDelete"),
    "/v3/auth/role/grant": _auth("RoleGrantPermission", "AuthRoleGrantPermission"),
    "/v3/auth/role/revoke": _auth("RoleRevokePermission", "AuthRoleRevokePermission"),
    "/v3/lock/lock": Route("/v3lockpb.Lock/Lock", lock.LockRequest, lock.LockResponse),
    "/v3/lock/unlock": Route("/v3lockpb.Lock/Unlock", lock.UnlockRequest, lock.UnlockResponse),
    "/v3/election/campaign": Route(
        "/v3electionpb.Election/Campaign", election.CampaignRequest, election.CampaignResponse
    ),
    "/v3/election/proclaim": Route(
        "/v3electionpb.Election/Proclaim", election.ProclaimRequest, election.ProclaimResponse
    ),
    "/v3/election/leader": Route("/v3electionpb.Election/Leader", election.LeaderRequest, election.LeaderResponse),
    "/v3/election/observe": Route("/v3electionpb.Election/Observe", election.LeaderRequest, election.LeaderResponse),
    "/v3/election/resign": Route("/v3electionpb.Election/Resign", election.ResignRequest, election.ResignResponse),
}
