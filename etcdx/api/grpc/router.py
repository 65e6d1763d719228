"""Maps gRPC paths to the service handlers; unknown paths get grpc-go's UNIMPLEMENTED texts."""

from __future__ import annotations

from etcdx.api.grpc.auth import AuthService
from etcdx.api.grpc.cluster import ClusterService
from etcdx.api.grpc.election import ElectionService
from etcdx.api.grpc.gates import gated
from etcdx.api.grpc.health import HealthService
from etcdx.api.grpc.kv import KVService
from etcdx.api.grpc.lease import LeaseService
from etcdx.api.grpc.lock import LockService
from etcdx.api.grpc.maintenance import MaintenanceService
from etcdx.api.grpc.watch import WatchService
from etcdx.net.grpc_metrics import BIDI_STREAM, COUNTS, SERVER_STREAM, UNARY
from etcdx.net.grpc_server import BidiStreamMethod, Resolver, ServerStreamMethod, flush_deferred_replies
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
    server.flush_replies = flush_deferred_replies  # the deferred calls' replies go out after each Ready step
    return routes


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
