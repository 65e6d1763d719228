"""Runs the client listeners: gRPC and HTTP/1.1 on every --listen-client-urls address; with read workers
(etcdx/worker/), also the member's private unix sockets (HTTP/2, HTTP/1.1 from TLS ports, the member link), the
applied mark and the workers."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from functools import partial

import trio

from etcdx.api.grpc.router import build_resolver
from etcdx.api.http.access_control import AccessControl
from etcdx.api.http.endpoints import HttpEndpoints
from etcdx.api.http.gateway import Gateway
from etcdx.api.http.v2expiry import run_expiry
from etcdx.log import get_logger
from etcdx.net.conn_limits import DEFAULT_LIMITS
from etcdx.net.grpc_limits import GrpcLimits
from etcdx.net.grpc_metrics import COUNTS
from etcdx.net.listener import ListenAddress, check_port_free, open_private_unix_listener, serve_client_port
from etcdx.server.server import EtcdServer
from etcdx.worker.applied_mark import AppliedMark, mark_path
from etcdx.worker.link_client import link_path
from etcdx.worker.link_member import serve_link
from etcdx.worker.member_side import with_worker_calls
from etcdx.worker.relay import secure_http_path
from etcdx.worker.served_counts import MemberCounts, counts_path
from etcdx.worker.supervisor import WorkerPlan, supervise

log = get_logger("etcdx.serve")

# grpc-go's server accepts this much above --max-request-bytes, as etcd configures it.
GRPC_OVERHEAD_BYTES = 512 * 1024
# A member link request frame carries the client's metadata beside its message (at most what the HTTP/2 header
# list limit let in, well below this).
LINK_METADATA_BYTES = 1024 * 1024


async def serve_clients(
    server: EtcdServer,
    addresses: list[ListenAddress],
    *,
    grpc_limits: GrpcLimits = GrpcLimits(),  # noqa: B008 - frozen
    workers: WorkerPlan | None = None,
    task_status: trio.TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves every address until cancelled; reports the bound ports once all listen. The listeners
    share the connection limits (net/conn_limits.py): the cap on open connections and the read budget are
    divided between them.

    With ``workers``: the TCP listeners bind with SO_REUSEPORT, the private unix socket serves the full
    client API plus the workers' barrier (member_side.py) with limits of its own (each worker multiplexes its
    clients' calls over one connection), and the workers run under the supervisor, started once every listener
    is bound."""
    resolve, services = build_resolver(server)
    if workers is not None and workers.automatic and not _unix_sockets_work(workers.socket_path):
        workers = None
    if workers is not None:
        addresses = [a if a.unix else dataclasses.replace(a, reuse_port=True) for a in addresses]
        for address in addresses:
            if address.reuse_port and address.port:
                check_port_free(address.host, address.port)
    settings = server.settings
    max_recv = settings.max_request_bytes + GRPC_OVERHEAD_BYTES
    gateway = Gateway(resolve, max_recv) if settings.enable_grpc_gateway else None
    access = AccessControl(cors=settings.cors, host_whitelist=settings.host_whitelist)
    limits = DEFAULT_LIMITS.shared_by(len(addresses))
    async with trio.open_nursery() as nursery:
        if settings.enable_v2:
            nursery.start_soon(run_expiry, server)
        if gateway is not None:
            await nursery.start(gateway.run)
        ports = []
        for address in addresses:
            http_handler = HttpEndpoints(server, gateway, access, secure=address.tls is not None)
            bound = await nursery.start(
                lambda task_status, address=address, http_handler=http_handler: serve_client_port(
                    address.host,
                    address.port,
                    resolve=resolve,
                    known_services=services,
                    http_handler=http_handler,
                    http_body_limit=http_handler.body_limit,
                    max_recv_message_bytes=max_recv,
                    grpc_limits=grpc_limits,
                    limits=limits,
                    tls=address.tls,
                    unix=address.unix,
                    reuse_port=address.reuse_port,
                    task_status=task_status,
                )
            )
            ports.append(bound)
        if workers is not None:
            await _start_workers(
                nursery, server, workers, resolve, services, gateway, access, max_recv, addresses, ports
            )
        task_status.started(ports)


def _unix_sockets_work(path: str) -> bool:
    """Whether a unix socket can be made at ``path`` (not on every filesystem: FUSE ones may refuse). Without
    its private sockets a member cannot have workers; with the default worker count it then serves alone."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        probe.bind(path)
    except OSError as exc:
        log.info("serving from one process", reason=f"no unix socket in the data dir: {exc}")
        return False
    finally:
        probe.close()
        with contextlib.suppress(OSError):
            os.remove(path)
    return True


async def _start_workers(
    nursery: trio.Nursery, server, workers: WorkerPlan, resolve, services, gateway, access, max_recv, addresses, ports
) -> None:
    mark = AppliedMark.create(mark_path(workers.socket_path), server.applied_index)
    server.publish_applied = mark.publish
    server.publish_applied_state()  # not at the next apply: a member that leads alone says so to idle workers now
    link = await open_private_unix_listener(link_path(workers.socket_path))
    private_resolve = with_worker_calls(server, resolve)
    nursery.start_soon(serve_link, link, private_resolve, services, max_recv + LINK_METADATA_BYTES)
    # workers.sock: gRPC, and HTTP/1.1 relayed from plain ports; secure_http_path: HTTP/1.1 relayed from TLS
    # ports (etcd checks no Host there). Both take the client certificate's CN a worker forwards.
    for path, secure in ((workers.socket_path, False), (secure_http_path(workers.socket_path), True)):
        http_handler = HttpEndpoints(server, gateway, access, secure=secure)
        await nursery.start(
            partial(
                serve_client_port,
                path,
                0,
                resolve=private_resolve,
                known_services=services,
                http_handler=http_handler,
                http_body_limit=http_handler.body_limit,
                max_recv_message_bytes=max_recv,
                listeners=[await open_private_unix_listener(path)],
                trust_forwarded_cn=True,
            )
        )
        nursery.start_soon(_remove_on_exit, path)
    nursery.start_soon(_count_workers_answers, MemberCounts(counts_path(workers.socket_path), workers.count))
    shared = [port for address, port in zip(addresses, ports, strict=True) if address.reuse_port and not address.unix]
    nursery.start_soon(supervise, workers, os.getpid(), shared, lambda: server.backend.env.reader_check())
    nursery.start_soon(_remove_on_exit, link_path(workers.socket_path))
    nursery.start_soon(_remove_on_exit, mark_path(workers.socket_path))


async def _count_workers_answers(counts: MemberCounts) -> None:
    """Adds the Ranges the workers answer to the member's gRPC series while it serves (served_counts.py)."""
    COUNTS.started_elsewhere, COUNTS.handled_elsewhere = counts.started, counts.handled
    try:
        await trio.sleep_forever()
    finally:
        COUNTS.started_elsewhere = COUNTS.handled_elsewhere = lambda: ()
        counts.close()
        with contextlib.suppress(OSError):
            os.remove(counts.path)


async def _remove_on_exit(path: str) -> None:
    """Removes the private socket's file when the member stops serving."""
    try:
        await trio.sleep_forever()
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
