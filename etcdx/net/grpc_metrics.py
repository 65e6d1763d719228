"""Per-method gRPC call counts, as grpc-go-prometheus counts them for etcd: calls started (per gRPC path and the
client's "client-api-version" metadata, for etcd_server_client_requests_total), calls handled per status code,
the messages streaming calls received and sent, and the bytes of every gRPC connection. Plain dict and int
increments on the call path; etcdx/server/metrics_grpc.py turns them into Prometheus series when /metrics is
scraped. A unary call receives one message and sends one when it ends OK, so its message counts are derived
there from ``started`` and ``handled`` rather than counted per call.

Calls another process answered for this member (its read workers, etcdx/worker/served_counts.py) come from
``started_elsewhere`` and ``handled_elsewhere``, read when /metrics is scraped.

With ``timing`` (etcd's --metrics extensive) each call's duration goes to ``observe_handling(path, seconds)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

# grpc-prometheus' grpc_type label per kind of method.
UNARY, SERVER_STREAM, BIDI_STREAM = "unary", "server_stream", "bidi_stream"


class GrpcCounts:
    def __init__(self) -> None:
        self.started: defaultdict[tuple[str, str], int] = defaultdict(int)  # (path, client api version)
        self.handled: defaultdict[tuple[str, int], int] = defaultdict(int)  # (path, status code)
        self.stream_received: defaultdict[str, int] = defaultdict(int)
        self.stream_sent: defaultdict[str, int] = defaultdict(int)
        self.received_bytes = 0
        self.sent_bytes = 0
        self.kinds: dict[str, str] = {}  # path -> grpc_type, for every method served
        self.timing = False
        self.observe_handling: Callable[[str, float], None] = lambda path, seconds: None
        self.started_elsewhere: Callable[[], Iterable[tuple[tuple[str, str], int]]] = lambda: ()
        self.handled_elsewhere: Callable[[], Iterable[tuple[tuple[str, int], int]]] = lambda: ()

    def declare(self, kinds: Mapping[str, str]) -> None:
        """The methods the server serves, by path, with their grpc_type."""
        self.kinds.update(kinds)

    def started_calls(self, path: str) -> int:
        return sum(count for (p, _), count in list(self.started.items()) if p == path)

    def open_calls(self, path: str) -> int:
        """Calls of ``path`` started and not yet ended."""
        ended = sum(count for (p, _), count in list(self.handled.items()) if p == path)
        return self.started_calls(path) - ended


# One per process, as Prometheus' default registry is.
COUNTS = GrpcCounts()
