"""etcd 3.5.1's Maintenance.Downgrade, for what etcdx can do.

VALIDATE answers as etcd: the target must parse as etcd reads it (parse_target), then, after a linearizable
read, the cluster version must be known and the target must be its previous minor version; the answer carries
the cluster version. CANCEL answers etcd's "no inflight downgrade job" after the same read: no downgrade job is
ever enabled on etcdx. ENABLE makes the VALIDATE checks, then refuses a valid target with etcd's "invalid
downgrade target version": etcdx runs one version only, so there is nothing to downgrade to (etcd 3.5.1 records
the job, then answers "request timed out"; docs/differences.md). An unknown action is etcd's "unknown method".
"""

from __future__ import annotations

import re

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.server.server import EtcdServer

C = errors.StatusCode
ERR_WRONG_VERSION_FORMAT = errors.etcd_error(C.INVALID_ARGUMENT, "etcdserver: wrong downgrade target version format")
ERR_INVALID_TARGET = errors.etcd_error(C.INVALID_ARGUMENT, "etcdserver: invalid downgrade target version")
ERR_CLUSTER_VERSION_UNAVAILABLE = errors.etcd_error(
    C.UNAVAILABLE, "etcdserver: cluster version not found during downgrade"
)
ERR_NO_INFLIGHT_DOWNGRADE = errors.etcd_error(C.FAILED_PRECONDITION, "etcdserver: no inflight downgrade job")
ERR_UNKNOWN_METHOD = errors.etcd_error(C.UNKNOWN, "etcdserver: unknown method")

_IDENTIFIER = re.compile(r"[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*\Z")
_NUMBER = re.compile(r"[0-9]+\Z")
_INT64_MAX = (1 << 63) - 1
Action = rpc_pb2.DowngradeRequest


def _semver(text: str) -> tuple[int, int] | None:
    """(major, minor) of ``text`` read as go-semver reads a version: MAJOR.MINOR.PATCH of decimal int64s, then an
    optional "-pre-release" and "+metadata" of dot-separated [0-9A-Za-z-] identifiers; None when it does not
    parse."""
    text, _, metadata = text.partition("+")
    text, _, pre_release = text.partition("-")
    parts = text.split(".", 2)
    if len(parts) != 3 or any(tag and not _IDENTIFIER.match(tag) for tag in (pre_release, metadata)):
        return None
    if not all(_NUMBER.match(part) and int(part) <= _INT64_MAX for part in parts):
        return None
    return int(parts[0]), int(parts[1])


def parse_target(version: str) -> tuple[int, int]:
    """etcd's convertToClusterVersion: ``version`` as a semantic version, or as MAJOR.MINOR (".0" appended);
    only its major and minor count. Raises ERR_WRONG_VERSION_FORMAT."""
    parsed = _semver(version)
    if parsed is None:
        parsed = _semver(version + ".0")
    if parsed is None:
        raise ERR_WRONG_VERSION_FORMAT
    return parsed


async def downgrade(server: EtcdServer, request: rpc_pb2.DowngradeRequest) -> rpc_pb2.DowngradeResponse:
    """The answer etcd 3.5.1 gives ``request`` on a cluster with no downgrade job (the module docstring)."""
    if request.action in (Action.VALIDATE, Action.ENABLE):
        target = parse_target(request.version)
        await server.linearizable_read()
        cluster_version = server.applier.cluster_version
        if cluster_version is None:
            raise ERR_CLUSTER_VERSION_UNAVAILABLE
        major, minor = (int(part) for part in cluster_version.split(".")[:2])
        if target != (major, minor - 1) or request.action == Action.ENABLE:
            raise ERR_INVALID_TARGET
        return rpc_pb2.DowngradeResponse(header=server.header(), version=f"{major}.{minor}.0")
    if request.action == Action.CANCEL:
        await server.linearizable_read()
        raise ERR_NO_INFLIGHT_DOWNGRADE
    raise ERR_UNKNOWN_METHOD
