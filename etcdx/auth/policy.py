"""Who may call each gRPC method while auth is enabled: the table the API layer and apply consult.

Access classes:
- OPEN: no token needed (Authenticate, the health service; AuthEnable is ADMIN but a no-op when on).
- AUTHENTICATED: any existing user with a current auth revision (``AuthStore.check_authenticated``).
- ADMIN: a user holding role root (``AuthStore.check_admin``).
- SELF_OR_ADMIN / HOLDER_OR_ADMIN: UserGet of oneself, RoleGet of a role one holds (``check_user_get``
  / ``check_role_get``).
- KEYS: key permissions, per request (checks.py); Lock and Election run their KV ops as the caller
  and are checked op by op the same way.

``ETCD_3_5_1`` records what etcd 3.5.1 does for the methods where etcdx is stricter: observed against
etcd 3.5.1 with a non-root user and with no user (tests/unit/auth/test_auth_holes_vs_etcd.py), except
LeaseKeepAlive and Downgrade, taken from etcd's source. These are the holes of GHSA-q8m4-xhhv-38mg
(CVE-2026-33413: MemberList, Alarm, the Lease APIs, compaction) and of the key checks etcd skipped
(LeaseTimeToLive keys, nested txns, PrevKv/lease in txn puts, open-ended watches).

Errors: etcd's Maintenance service returns the auth package's raw errors, which reach clients as
code 2 with texts such as "auth: permission denied"; ``unmapped`` gives that form. Everything else
sends the mapped "etcdserver: ..." errors.
"""

from __future__ import annotations

import enum

from etcdx import errors


class Access(enum.Enum):
    OPEN = "open"
    AUTHENTICATED = "authenticated"
    ADMIN = "admin"
    SELF_OR_ADMIN = "self-or-admin"
    HOLDER_OR_ADMIN = "holder-or-admin"
    KEYS = "keys"


A = Access

METHODS: dict[str, Access] = {
    "/etcdserverpb.KV/Range": A.KEYS,
    "/etcdserverpb.KV/Put": A.KEYS,
    "/etcdserverpb.KV/DeleteRange": A.KEYS,
    "/etcdserverpb.KV/Txn": A.KEYS,
    "/etcdserverpb.KV/Compact": A.ADMIN,
    "/etcdserverpb.Watch/Watch": A.KEYS,
    "/etcdserverpb.Lease/LeaseGrant": A.AUTHENTICATED,
    "/etcdserverpb.Lease/LeaseRevoke": A.KEYS,
    "/etcdserverpb.Lease/LeaseKeepAlive": A.KEYS,
    "/etcdserverpb.Lease/LeaseTimeToLive": A.KEYS,
    "/etcdserverpb.Lease/LeaseLeases": A.AUTHENTICATED,
    "/etcdserverpb.Cluster/MemberAdd": A.ADMIN,
    "/etcdserverpb.Cluster/MemberRemove": A.ADMIN,
    "/etcdserverpb.Cluster/MemberUpdate": A.ADMIN,
    "/etcdserverpb.Cluster/MemberPromote": A.ADMIN,
    "/etcdserverpb.Cluster/MemberList": A.AUTHENTICATED,
    "/etcdserverpb.Maintenance/Alarm": A.ADMIN,  # AlarmRequest GET is AUTHENTICATED: see alarm_access
    "/etcdserverpb.Maintenance/Status": A.AUTHENTICATED,
    "/etcdserverpb.Maintenance/Defragment": A.ADMIN,
    "/etcdserverpb.Maintenance/Hash": A.ADMIN,
    "/etcdserverpb.Maintenance/HashKV": A.ADMIN,
    "/etcdserverpb.Maintenance/Snapshot": A.ADMIN,
    "/etcdserverpb.Maintenance/MoveLeader": A.ADMIN,
    "/etcdserverpb.Maintenance/Downgrade": A.ADMIN,
    "/etcdserverpb.Auth/AuthEnable": A.ADMIN,
    "/etcdserverpb.Auth/AuthDisable": A.ADMIN,
    "/etcdserverpb.Auth/AuthStatus": A.ADMIN,
    "/etcdserverpb.Auth/Authenticate": A.OPEN,
    "/etcdserverpb.Auth/UserAdd": A.ADMIN,
    "/etcdserverpb.Auth/UserGet": A.SELF_OR_ADMIN,
    "/etcdserverpb.Auth/UserList": A.ADMIN,
    "/etcdserverpb.Auth/UserDelete": A.ADMIN,
    "/etcdserverpb.Auth/UserChangePassword": A.ADMIN,
    "/etcdserverpb.Auth/UserGrantRole": A.ADMIN,
    "/etcdserverpb.Auth/UserRevokeRole": A.ADMIN,
    "/etcdserverpb.Auth/RoleAdd": A.ADMIN,
    "/etcdserverpb.Auth/RoleGet": A.HOLDER_OR_ADMIN,
    "/etcdserverpb.Auth/RoleList": A.ADMIN,
    "/etcdserverpb.Auth/RoleDelete": A.ADMIN,
    "/etcdserverpb.Auth/RoleGrantPermission": A.ADMIN,
    "/etcdserverpb.Auth/RoleRevokePermission": A.ADMIN,
    "/v3lockpb.Lock/Lock": A.KEYS,
    "/v3lockpb.Lock/Unlock": A.KEYS,
    "/v3electionpb.Election/Campaign": A.KEYS,
    "/v3electionpb.Election/Proclaim": A.KEYS,
    "/v3electionpb.Election/Leader": A.KEYS,
    "/v3electionpb.Election/Observe": A.KEYS,
    "/v3electionpb.Election/Resign": A.KEYS,
    "/grpc.health.v1.Health/Check": A.OPEN,
    "/grpc.health.v1.Health/Watch": A.OPEN,
}

# What etcd 3.5.1 checks where etcdx checks more (observed; "none" = not even a token is needed).
ETCD_3_5_1: dict[str, str] = {
    "/etcdserverpb.KV/Compact": "none",
    "/etcdserverpb.KV/Txn": "top-level ops only: ops of nested txns, prev_kv and lease of puts in txns unchecked",
    "/etcdserverpb.Watch/Watch": "open-ended (from-key) range checked as the single key",
    "/etcdserverpb.Lease/LeaseGrant": "none",
    "/etcdserverpb.Lease/LeaseRevoke": "write on attached keys, but a lease with no keys: none",
    "/etcdserverpb.Lease/LeaseKeepAlive": "none",
    "/etcdserverpb.Lease/LeaseTimeToLive": "none, and keys=true lists keys the user cannot read",
    "/etcdserverpb.Lease/LeaseLeases": "none",
    "/etcdserverpb.Cluster/MemberList": "none",
    "/etcdserverpb.Maintenance/Alarm": "none (any caller may list, activate or disarm alarms)",
    "/etcdserverpb.Maintenance/Status": "none",
    "/etcdserverpb.Maintenance/MoveLeader": "none",
    "/etcdserverpb.Maintenance/Downgrade": "none",
}

MAINTENANCE_PREFIX = "/etcdserverpb.Maintenance/"


def alarm_access(action: int) -> Access:
    """AlarmRequest.action: GET (0) lists alarms (AUTHENTICATED); ACTIVATE (1) and DEACTIVATE (2) are ADMIN."""
    return Access.AUTHENTICATED if action == 0 else Access.ADMIN


_UNMAPPED_TEXT = {
    errors.ERR_PERMISSION_DENIED: "auth: permission denied",
    errors.ERR_USER_EMPTY: "auth: user name is empty",
    errors.ERR_AUTH_OLD_REVISION: "auth: revision in header is old",
    errors.ERR_INVALID_AUTH_TOKEN: "auth: invalid auth token",
    errors.ERR_USER_NOT_FOUND: "auth: user not found",
}


def unmapped(exc: errors.EtcdError) -> errors.EtcdError:
    """The error as etcd's Maintenance service sends it: code 2 and the auth package's own text."""
    for cls, text in _UNMAPPED_TEXT.items():
        if isinstance(exc, cls):
            return errors.EtcdError(errors.StatusCode.UNKNOWN, text)
    return exc
