"""A read worker's method table: Range by LocalRange, every other method of etcd's API relayed to the member
unchanged (the grpc-proxy's forwarding, etcdx/proxy/forward.py: call metadata such as the auth token goes along,
the member's status and text come back). A path the table does not know is relayed too, as a bidirectional
stream, so even the "unknown service" answers are the member's."""

from __future__ import annotations

from etcdx.net.grpc_server import Method, Resolver
from etcdx.proxy import forward
from etcdx.proxy.routes import BIDI_STREAMS, SERVER_STREAMS, UNARY
from etcdx.proxy.upstream import Upstream
from etcdx.worker.local_range import RANGE_PATH, LocalRange

_MORE_UNARY = (
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Lease/LeaseTimeToLive",
)
_MORE_BIDI = ("/etcdserverpb.Watch/Watch",)


def worker_resolver(upstream: Upstream, ranges: LocalRange) -> tuple[Resolver, frozenset[str]]:
    routes: dict[str, Method] = {RANGE_PATH: ranges.method()}
    routes.update((path, forward.unary(upstream, path)) for path in (*UNARY, *_MORE_UNARY))
    routes.update((path, forward.server_stream(upstream, path)) for path in SERVER_STREAMS)
    routes.update((path, forward.bidi_stream(upstream, path)) for path in (*BIDI_STREAMS, *_MORE_BIDI))

    def resolve(path: str) -> Method:
        method = routes.get(path)
        return method if method is not None else forward.bidi_stream(upstream, path)

    return resolve, frozenset(path.split("/")[1] for path in routes)
