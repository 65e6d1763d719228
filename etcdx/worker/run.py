"""`etcdx read-worker ...`: one read worker process (started by the member's supervisor, never by hand).

Arguments: index, the member's PID, the member's unix socket, the backend directory, the LMDB map size, the
bound client ports (comma-separated, in the order of the member's http:// and https:// --listen-client-urls),
then the member's own etcd flags, parsed here as the member parsed them (the environment is the member's too):
the listen hosts, TLS files and checks, request limits, gRPC keep-alive and log settings are the member's (with
--auto-tls, the pair the member made in the data dir).

The worker listens on the member's client ports with SO_REUSEPORT, serves Range itself (local_range.py) and
relays the rest (routes.py, relay.py). It stops on SIGTERM or SIGINT, and once the member is gone (a pidfd
tells at once; else its parent PID changing, within PARENT_CHECK_INTERVAL). Not PR_SET_PDEATHSIG: the kernel
sends that when the parent *thread* that forked ends, and trio starts processes from a worker thread that ends
when idle.
"""

from __future__ import annotations

import os
import signal
import sys
from functools import partial

import trio

from etcdx import log as logging_setup
from etcdx.cli.listener_tls import TlsSetupError, client_addresses
from etcdx.config import Config, ConfigError, parse_config
from etcdx.log import get_logger
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.net.listener import ListenAddress, serve_client_port
from etcdx.worker.applied_mark import AppliedMark, mark_path
from etcdx.worker.link_client import MemberLink, link_path
from etcdx.worker.local_range import LocalRange
from etcdx.worker.relay import relay_http1, secure_http_path
from etcdx.worker.routes import worker_resolver
from etcdx.worker.served_counts import WorkerCounts, counts_path

log = get_logger("etcdx.worker")

PARENT_CHECK_INTERVAL = 0.5
GRPC_OVERHEAD_BYTES = 512 * 1024  # as the member's listener (api/serve.py)
MAX_ANSWER_BYTES = 2**31 - 1  # a member's answer is as large as gRPC allows: the link trusts its member


async def _unused_http(request: HttpRequest) -> HttpResponse:  # HTTP/1.1 is relayed, never served here
    return HttpResponse(500, [], b"")


async def serve_worker(
    config: Config,
    addresses: list[ListenAddress],
    index: int,
    parent: int,
    socket_path: str,
    backend_path: str,
    map_size: int,
    ports: list[int],
) -> None:
    """Serves ``addresses`` (the member's TCP client addresses, with their TLS) on ``ports`` until cancelled."""
    link = MemberLink(link_path(socket_path), MAX_ANSWER_BYTES)
    mark = AppliedMark.open(mark_path(socket_path))
    counts = WorkerCounts(counts_path(socket_path), index)
    ranges = LocalRange(backend_path, map_size, link, mark, counts)
    resolve, services = worker_resolver(link, ranges)
    limits = GrpcLimits(
        max_concurrent_streams=config.max_concurrent_streams,
        keepalive_min_time=config.grpc_keepalive_min_time,
        keepalive_interval=config.grpc_keepalive_interval,
        keepalive_timeout=config.grpc_keepalive_timeout,
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
            nursery.start_soon(_stop_without_parent, parent, nursery.cancel_scope)
            await nursery.start(link.run)
            await nursery.start(ranges.run)
            for address, port in zip(addresses, ports, strict=True):
                http_path = secure_http_path(socket_path) if address.tls is not None else socket_path
                await nursery.start(
                    partial(
                        serve_client_port,
                        address.host,
                        port,
                        resolve=resolve,
                        known_services=services,
                        http_handler=_unused_http,
                        max_recv_message_bytes=config.max_request_bytes + GRPC_OVERHEAD_BYTES,
                        grpc_limits=limits,
                        tls=address.tls,
                        reuse_port=True,
                        relay_http1=partial(relay_http1, http_path),
                    )
                )
            log.info("read worker ready", worker=index, pid=os.getpid(), ports=ports)
    finally:
        mark.close()
        counts.close()
        log.info(
            "read worker stopped",
            worker=index,
            pid=os.getpid(),
            local_ranges=ranges.served,
            relayed_ranges=ranges.relayed,
            barriers=ranges.barriers,
            failed_with_barrier=ranges.failed_with_barrier,
            served_by_task=ranges.served_by_task,
        )


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _stop_without_parent(parent: int, scope: trio.CancelScope) -> None:
    """Cancels ``scope`` once the member is gone: at once where the kernel tells (a pidfd, Linux 5.3+), so the
    client ports are free again before a supervisor restarts a killed member; else when the parent PID changes."""
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):  # no pidfd here, or the member is already gone
        pidfd = None
    try:
        if pidfd is not None and os.getppid() == parent:  # still the member's PID (not one reused since it died)
            await trio.lowlevel.wait_readable(pidfd)  # readable once the process has exited
        while pidfd is None and os.getppid() == parent:
            await trio.sleep(PARENT_CHECK_INTERVAL)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    log.warning("read worker: the member is gone; stopping", member_pid=parent)
    scope.cancel()


def main(argv: list[str]) -> int:
    try:
        index, parent, socket_path, backend_path, map_size, ports, *etcd_argv = argv
        config = parse_config(etcd_argv, os.environ)
        logging_setup.configure(config.log_level, config.log_outputs)
        addresses = [address for address in client_addresses(config) if not address.unix]
    except (ValueError, ConfigError, TlsSetupError) as exc:
        print(f"etcdx read-worker: {exc}", file=sys.stderr)
        return 2
    args = (int(index), int(parent), socket_path, backend_path, int(map_size), [int(p) for p in ports.split(",")])
    trio.run(serve_worker, config, addresses, *args)
    return 0
