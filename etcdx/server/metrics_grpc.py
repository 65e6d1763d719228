"""grpc-go-prometheus' series from the gRPC call counts (net/grpc_metrics.py), as etcd 3.5 exports them.

As in etcd, every method of the services registered with the metrics interceptor starts at zero for every status
code (grpc-prometheus' InitializeMetrics); Lock and Election, which etcd registers later, appear once called.
``enable_handling_histogram`` adds grpc_server_handling_seconds (etcd's --metrics extensive).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from etcdx.errors import StatusCode
from etcdx.net.grpc_metrics import UNARY, GrpcCounts
from etcdx.server import metrics

PRE_DECLARED_SERVICES = frozenset(
    {
        "etcdserverpb.KV",
        "etcdserverpb.Watch",
        "etcdserverpb.Lease",
        "etcdserverpb.Cluster",
        "etcdserverpb.Maintenance",
        "etcdserverpb.Auth",
        "grpc.health.v1.Health",
    }
)
# grpc-go's names of the status codes (codes.Code.String()).
CODE_NAMES = {
    StatusCode.OK: "OK",
    StatusCode.CANCELLED: "Canceled",
    StatusCode.UNKNOWN: "Unknown",
    StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    StatusCode.NOT_FOUND: "NotFound",
    StatusCode.ALREADY_EXISTS: "AlreadyExists",
    StatusCode.PERMISSION_DENIED: "PermissionDenied",
    StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    StatusCode.ABORTED: "Aborted",
    StatusCode.OUT_OF_RANGE: "OutOfRange",
    StatusCode.UNIMPLEMENTED: "Unimplemented",
    StatusCode.INTERNAL: "Internal",
    StatusCode.UNAVAILABLE: "Unavailable",
    StatusCode.DATA_LOSS: "DataLoss",
    StatusCode.UNAUTHENTICATED: "Unauthenticated",
}
_LABELS = ["grpc_method", "grpc_service", "grpc_type"]


def _split(path: str) -> tuple[str, str]:
    service, _, method = path.lstrip("/").partition("/")
    return service, method


def grpc_families(counts: GrpcCounts) -> Iterator[Metric]:
    kinds = counts.kinds
    shown = {path for path in kinds if _split(path)[0] in PRE_DECLARED_SERVICES}
    started: defaultdict[str, int] = defaultdict(int)
    by_version: defaultdict[tuple[str, str], int] = defaultdict(int)
    for (path, version), count in (*counts.started.items(), *counts.started_elsewhere()):
        started[path] += count
        kind = kinds.get(path, UNARY)
        by_version[version, "unary" if kind == UNARY else "stream"] += count
    handled: defaultdict[tuple[str, int], int] = defaultdict(int, counts.handled)
    for key, count in counts.handled_elsewhere():
        handled[key] += count
    shown.update(started)
    shown.update(path for path, _ in handled)

    started_family = CounterMetricFamily(
        "grpc_server_started_total", "Total number of RPCs started on the server.", labels=_LABELS
    )
    handled_family = CounterMetricFamily(
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.",
        labels=["grpc_code", *_LABELS],
    )
    received_family = CounterMetricFamily(
        "grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels=_LABELS
    )
    sent_family = CounterMetricFamily(
        "grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels=_LABELS
    )
    for path in sorted(shown):
        service, method = _split(path)
        kind = kinds.get(path, UNARY)
        labels = [method, service, kind]
        started_family.add_metric(labels, started.get(path, 0))
        for code, name in CODE_NAMES.items():
            handled_family.add_metric([name, *labels], handled.get((path, code), 0))
        if kind == UNARY:
            received_family.add_metric(labels, started.get(path, 0))
            sent_family.add_metric(labels, handled.get((path, StatusCode.OK), 0))
        else:
            received_family.add_metric(labels, counts.stream_received.get(path, 0))
            sent_family.add_metric(labels, counts.stream_sent.get(path, 0))
    yield from (started_family, handled_family, received_family, sent_family)

    requests = CounterMetricFamily(
        "etcd_server_client_requests_total",
        "The total number of client requests per client version.",
        labels=["client_api_version", "type"],
    )
    for (version, kind), count in sorted(by_version.items()):
        requests.add_metric([version, kind], count)
    yield requests


def enable_handling_histogram(counts: GrpcCounts) -> None:
    """etcd's --metrics extensive: times every call into grpc_server_handling_seconds (prometheus' default
    buckets, as grpc-prometheus declares it)."""
    if counts.timing:
        return
    histogram = Histogram(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        _LABELS,
        registry=metrics.REGISTRY,
    )

    def observe(path: str, seconds: float) -> None:
        service, method = _split(path)
        histogram.labels(method, service, counts.kinds.get(path, UNARY)).observe(seconds)

    counts.observe_handling = observe
    counts.timing = True
