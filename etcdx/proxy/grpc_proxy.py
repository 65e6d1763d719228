"""`etcdx grpc-proxy start`: etcd's L7 gRPC proxy. Clients connect to the proxy as to an etcd member; it serves
every v3 service by calling the upstream cluster (upstream.py) over one HTTP/2 connection, coalesces watches
(watch_broadcast.py), caches Range responses (range_cache.py) and applies --namespace (namespace.py).

The listener is etcdx's own client-port stack (net/listener.py: gRPC and HTTP/1.1 on one port, TLS with
--cert-file/--key-file), so connection limits and protocol behaviour are the member's. HTTP/1.1 serves
/metrics (the proxy's series) and /health; so does --metrics-addr (HTTP only). --debug logs at debug level.

Refused, with the reason: --discovery-srv (DNS SRV records), --enable-pprof (a Go runtime profiler),
--resolver-prefix (registers the proxy in etcd's gRPC naming service, which etcdx's clients do not
resolve), --experimental-leasing-prefix (etcd's experimental leasing KV), --auto-tls (no listener
certificates generated for the proxy). Accepted with no effect: --data-dir (etcd keeps only auto-TLS
certificates there), --experimental-serializable-ordering (one upstream connection at a time: revisions of
serializable reads only move forward while it lasts), --self-signed-cert-validity,
--resolver-ttl, --advertise-client-url (used only with --resolver-prefix), --max-send-bytes (replies are as
large as the upstream made them).
"""

from __future__ import annotations

import ssl
import sys
from functools import partial

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from etcdx.net.conn_limits import DEFAULT_LIMITS
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.net.listener import serve_client_port
from etcdx.net.tls import ServerTls, TlsSettings
from etcdx.proxy.flags import Flag, FlagError, parse, usage
from etcdx.proxy.namespace import Namespace
from etcdx.proxy.range_cache import RangeCache
from etcdx.proxy.routes import build_routes
from etcdx.proxy.run import log, parse_listen_addr, run_until_signal
from etcdx.proxy.upstream import MAX_RECV_MESSAGE, Upstream, parse_endpoints
from etcdx.proxy.watch_broadcast import WatchHub, WatchMetrics

STR, BOOL, DUR, INT = "string", "bool", "duration", "int"
FLAGS = [
    Flag("advertise-client-url", STR, "127.0.0.1:23790", "advertise address to register (must be reachable by client)"),
    Flag("auto-tls", BOOL, False, "proxy TLS using generated certificates"),
    Flag("cacert", STR, "", "verify certificates of TLS-enabled secure etcd servers using this CA bundle"),
    Flag("cert", STR, "", "identify secure connections with etcd servers using this TLS certificate file"),
    Flag("cert-file", STR, "", "identify secure connections to the proxy using this TLS certificate file"),
    Flag("client-crl-file", STR, "", "proxy client certificate revocation list file."),
    Flag("data-dir", STR, "default.proxy", "Data directory for persistent data"),
    Flag("debug", BOOL, False, "Enable debug-level logging for grpc-proxy."),
    Flag("discovery-srv", STR, "", "domain name to query for SRV records describing cluster endpoints"),
    Flag("discovery-srv-name", STR, "", "service name to query when using DNS discovery"),
    Flag("enable-pprof", BOOL, False, "Enable runtime profiling data via HTTP server."),
    Flag("endpoints", STR, "127.0.0.1:2379", "comma separated etcd cluster endpoints"),
    Flag("experimental-leasing-prefix", STR, "", "leasing metadata prefix for disconnected linearized reads."),
    Flag(
        "experimental-serializable-ordering",
        BOOL,
        False,
        "Ensure serializable reads have monotonically increasing store revisions across endpoints.",
    ),
    Flag(
        "grpc-keepalive-interval",
        DUR,
        7200.0,
        "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).",
    ),
    Flag(
        "grpc-keepalive-min-time", DUR, 5.0, "Minimum interval duration that a client should wait before pinging proxy."
    ),
    Flag(
        "grpc-keepalive-timeout",
        DUR,
        20.0,
        "Additional duration of wait before closing a non-responsive connection (0 to disable).",
    ),
    Flag("insecure-discovery", BOOL, False, "accept insecure SRV records"),
    Flag("insecure-skip-tls-verify", BOOL, False, "skip authentication of etcd server TLS certificates"),
    Flag("key", STR, "", "identify secure connections with etcd servers using this TLS key file"),
    Flag("key-file", STR, "", "identify secure connections to the proxy using this TLS key file"),
    Flag("listen-addr", STR, "127.0.0.1:23790", "listen address"),
    Flag("max-recv-bytes", INT, 2147483647, "message receive limits in bytes"),
    Flag("max-send-bytes", INT, 1572864, "message send limits in bytes"),
    Flag("metrics-addr", STR, "", "listen for endpoint /metrics requests on an additional interface"),
    Flag("namespace", STR, "", "string to prefix to all keys for namespacing requests"),
    Flag(
        "resolver-prefix", STR, "", "prefix to use for registering proxy (must be shared with other grpc-proxy members)"
    ),
    Flag("resolver-ttl", INT, 0, "specify TTL, in seconds, when registering proxy endpoints"),
    Flag("self-signed-cert-validity", INT, 1, "The validity period of the proxy certificates, unit is year"),
    Flag("trusted-ca-file", STR, "", "verify certificates of TLS-enabled secure proxy using this CA bundle"),
]

REFUSED = {
    "discovery_srv": "--discovery-srv needs DNS SRV records of a domain; give --endpoints",
    "enable_pprof": "--enable-pprof profiles a Go runtime; etcdx has none",
    "resolver_prefix": "--resolver-prefix registers the proxy in etcd's gRPC naming service (endpoints under a key "
    "prefix); etcdx has no such resolver, so proxies are not discovered that way: list them in the clients' endpoints",
    "experimental_leasing_prefix": "--experimental-leasing-prefix (etcd's experimental leasing KV) is not implemented",
    "auto_tls": "--auto-tls is not implemented for the proxy; give --cert-file and --key-file",
}


def upstream_tls(values: dict) -> ssl.SSLContext | None:
    """The TLS the proxy dials https:// endpoints with (--cacert, --cert/--key, --insecure-skip-tls-verify)."""
    if not (values["cacert"] or values["cert"] or values["insecure_skip_tls_verify"]):
        return None
    context = ssl.create_default_context(cafile=values["cacert"] or None)
    if values["insecure_skip_tls_verify"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if values["cert"]:
        context.load_cert_chain(values["cert"], values["key"] or None)
    context.set_alpn_protocols(["h2"])
    return context


def listener_tls(values: dict) -> ServerTls | None:
    if not values["cert_file"]:
        return None
    return ServerTls(
        TlsSettings(
            cert_file=values["cert_file"],
            key_file=values["key_file"],
            trusted_ca_file=values["trusted_ca_file"],
            crl_file=values["client_crl_file"],
        )
    )


class ProxyHttp:
    """HTTP/1.1 on the proxy's ports: /metrics with the proxy's series, /health."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.target.split("?", 1)[0]
        if path == "/metrics":
            return HttpResponse(200, [("Content-Type", CONTENT_TYPE_LATEST)], generate_latest(self._registry))
        if path == "/health":
            return HttpResponse(200, [("Content-Type", "application/json")], b'{"health":"true","reason":""}')
        return HttpResponse(404, [("Content-Type", "text/plain; charset=utf-8")], b"404 page not found\n")


async def serve_proxy(values: dict, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    registry = CollectorRegistry()
    upstream = Upstream(parse_endpoints(values["endpoints"]), upstream_tls(values))
    hub = WatchHub(upstream, WatchMetrics(registry))
    namespace = Namespace(values["namespace"].encode())
    routes = build_routes(upstream, hub, RangeCache(registry), namespace)
    services = frozenset(path.split("/")[1] for path in routes)
    http = ProxyHttp(registry)
    host, port = parse_listen_addr(values["listen_addr"])
    limits = GrpcLimits(
        keepalive_min_time=values["grpc_keepalive_min_time"],
        keepalive_interval=values["grpc_keepalive_interval"],
        keepalive_timeout=values["grpc_keepalive_timeout"],
    )
    # etcd's default is 2 GiB - 1; a connection's request budget is twice this, so it stays at 64 MiB.
    max_recv = min(values["max_recv_bytes"], MAX_RECV_MESSAGE)
    async with trio.open_nursery() as nursery:
        await nursery.start(upstream.run)
        await nursery.start(hub.run)
        serve = partial(
            serve_client_port,
            resolve=routes.get,
            known_services=services,
            http_handler=http,
            max_recv_message_bytes=max_recv,
            grpc_limits=limits,
            limits=DEFAULT_LIMITS,
        )
        bound = await nursery.start(partial(serve, host, port, tls=listener_tls(values)))
        if values["metrics_addr"]:  # HTTP only (/metrics, /health): gRPC there finds no method
            metrics_host, metrics_port = parse_listen_addr(values["metrics_addr"])
            metrics_only = partial(serve, resolve=lambda path: None, known_services=frozenset())
            await nursery.start(partial(metrics_only, metrics_host, metrics_port))
        task_status.started(bound)


def main(argv: list[str]) -> int:
    if argv[:1] != ["start"]:
        sys.stderr.write("usage: etcdx grpc-proxy start [flags]\n")
        return 1
    try:
        values = parse(FLAGS, argv[1:])
        if values is None:
            sys.stdout.write(usage("grpc-proxy start", "start the grpc proxy", FLAGS))
            return 0
        for name, reason in REFUSED.items():
            if values[name]:
                raise FlagError(reason)
        parse_endpoints(values["endpoints"])
        parse_listen_addr(values["listen_addr"])
        listener_tls(values)
        upstream_tls(values)
    except (FlagError, ValueError, OSError, ssl.SSLError) as exc:
        sys.stderr.write(f"etcdx grpc-proxy: {exc}\n")
        return 1

    def ready(port: int) -> None:
        log.info(
            "ready to proxy client requests",
            listen_addr=values["listen_addr"].rpartition(":")[0] + f":{port}",
            endpoints=values["endpoints"],
            namespace=values["namespace"],
        )

    return run_until_signal(partial(serve_proxy, values), ready, log_level="debug" if values["debug"] else "info")
