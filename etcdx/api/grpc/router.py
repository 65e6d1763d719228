"""Maps gRPC paths to the service handlers; unknown paths get grpc-go's UNIMPLEMENTED texts."""

from __future__ import annotations

from etcdx.api.grpc import learner_gate
from etcdx.api.grpc.auth import AuthService
from etcdx.api.grpc.auth_gate import guard
from etcdx.api.grpc.cluster import ClusterService
from etcdx.api.grpc.election import ElectionService
from etcdx.api.grpc.gates import gated
from etcdx.api.grpc.health import HealthService
from etcdx.api.grpc.kv import KVService
from etcdx.api.grpc.lease import LeaseService
from etcdx.api.grpc.lock import LockService
from etcdx.api.grpc.maintenance import MaintenanceService
from etcdx.api.grpc.watch import WatchService
from etcdx.auth import policy
from etcdx.errors import EtcdError, StatusCode
from etcdx.net.grpc_metrics import BIDI_STREAM, COUNTS, SERVER_STREAM, UNARY
from etcdx.net.grpc_server import BidiStreamMethod, Resolver, RpcContext, ServerStreamMethod, UnaryMethod
from etcdx.server.server import EtcdServer


def build_routes(server: EtcdServer) -> dict:
    """Every method of etcd's API by path, e.g. "/etcdserverpb.KV/Range", each behind its gates (gates.py); the
    ones not served yet behind the learner's and auth's."""
    routes: dict = {}
    services = (
        KVService(server),
        WatchService(server),
        LeaseService(server),
        LockService(server),
        ElectionService(server),
        MaintenanceService(server),
        ClusterService(server),
        AuthService(server),
        HealthService(),
    )
    for service in services:
        routes.update((path, gated(server, path, method)) for path, method in service.methods().items())
    for path in policy.METHODS.keys() - routes.keys():
        routes[path] = learner_gate.guard(server, path, guard(server, path, UnaryMethod(_not_served(path))))
    return routes


def _not_served(path: str):
    """A method of etcd's API etcdx does not serve yet: past its auth gate (so a caller without the rights
    gets etcd's refusal), it answers what the transport answers for an unknown method."""
    service, method = path[1:].split("/")

    async def handler(data: bytes, ctx: RpcContext) -> bytes:
        raise EtcdError(StatusCode.UNIMPLEMENTED, f"unknown method {method} for service {service}")

    return handler


def build_resolver(server: EtcdServer) -> tuple[Resolver, frozenset[str]]:
    """The resolver for the transport and the set of known service names (for its error texts)."""
    routes = build_routes(server)
    services = frozenset(path.split("/")[1] for path in routes)
    COUNTS.declare({path: _grpc_type(method) for path, method in routes.items()})
    return routes.get, services


def _grpc_type(method) -> str:
    """grpc-prometheus' grpc_type label of a method (the /metrics series of its calls)."""
    if isinstance(method, ServerStreamMethod):
        return SERVER_STREAM
    if isinstance(method, BidiStreamMethod):
        return BIDI_STREAM
    return UNARY
