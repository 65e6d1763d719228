"""A read worker's method table: Range by LocalRange, every other method of etcd's API relayed to the member
unchanged, call metadata such as the auth token along, the member's status and text back. Unary calls that end
by themselves go over the member link (link_client.py: no HTTP/2, no task per call); the streams, and the two
unary calls that may wait without bound until the client gives up (Lock, Campaign: the member must see the
client cancel), go over HTTP/2 to the member's private socket (the grpc-proxy's forwarding,
etcdx/proxy/forward.py). A path the table does not know is relayed as a bidirectional stream, so even the
"unknown service" answers are the member's."""

from __future__ import annotations

from etcdx.net.grpc_server import Method, Resolver
from etcdx.proxy import forward
from etcdx.proxy.routes import BIDI_STREAMS, SERVER_STREAMS, UNARY
from etcdx.proxy.upstream import Upstream
from etcdx.worker.link_client import MemberLink
from etcdx.worker.local_range import RANGE_PATH, LocalRange

_MORE_UNARY = (
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Lease/LeaseTimeToLive",
)
UNBOUNDED_WAITS = ("/v3lockpb.Lock/Lock", "/v3electionpb.Election/Campaign")
_MORE_BIDI = ("/etcdserverpb.Watch/Watch",)


def worker_resolver(upstream: Upstream, link: MemberLink, ranges: LocalRange) -> tuple[Resolver, frozenset[str]]:
    routes: dict[str, Method] = {RANGE_PATH: ranges.method()}
    relayed = (path for path in (*UNARY, *_MORE_UNARY) if path not in UNBOUNDED_WAITS)
    routes.update((path, link.relay(path)) for path in relayed)
    routes.update((path, forward.unary(upstream, path)) for path in UNBOUNDED_WAITS)
    routes.update((path, forward.server_stream(upstream, path)) for path in SERVER_STREAMS)
    routes.update((path, forward.bidi_stream(upstream, path)) for path in (*BIDI_STREAMS, *_MORE_BIDI))

    def resolve(path: str) -> Method:
        method = routes.get(path)
        return method if method is not None else forward.bidi_stream(upstream, path)

    return resolve, frozenset(path.split("/")[1] for path in routes)
