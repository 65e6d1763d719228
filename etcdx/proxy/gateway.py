"""`etcdx gateway start`: etcd's L4 gateway. Every accepted TCP connection is spliced, bytes as they are, to
one of the --endpoints, so clients of any protocol (gRPC, the /v3 JSON gateway, HTTP) reach the cluster
through it.

Contracts (etcd's tcpproxy):
- Endpoints are picked round-robin among the ones in use. One that cannot be dialled is taken out of use
  for --retry-delay and the next one is tried at once; once the delay has passed it is tried again. A
  client connection for which no endpoint can be dialled is closed.
- When either side of a spliced pair closes or fails, both are closed.
- --discovery-srv needs DNS SRV records of a domain (a service outside the machine): refused.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial

import trio

from etcdx.log import get_logger
from etcdx.net.splice import splice
from etcdx.proxy.flags import Flag, FlagError, parse, usage
from etcdx.proxy.run import parse_listen_addr, run_until_signal
from etcdx.proxy.upstream import Endpoint, parse_endpoints

log = get_logger("etcdx.gateway")

DIAL_TIMEOUT = 5.0

FLAGS = [
    Flag("discovery-srv", "string", "", "DNS domain used to bootstrap initial cluster"),
    Flag("discovery-srv-name", "string", "", "service name to query when using DNS discovery"),
    Flag("endpoints", "string", "127.0.0.1:2379", "comma separated etcd cluster endpoints"),
    Flag("insecure-discovery", "bool", False, "accept insecure SRV records"),
    Flag("listen-addr", "string", "127.0.0.1:23790", "listen address"),
    Flag("retry-delay", "duration", 60.0, "duration of delay before retrying failed endpoints"),
    Flag(
        "trusted-ca-file",
        "string",
        "",
        "path to the client server TLS CA file for verifying the discovered endpoints when discovery-srv is provided.",
    ),
]


@dataclass(eq=False)
class _Remote:
    endpoint: Endpoint
    out_of_use_until: float = 0.0


class Gateway:
    def __init__(self, endpoints: list[Endpoint], retry_delay: float) -> None:
        self._remotes = [_Remote(endpoint) for endpoint in endpoints]
        self._retry_delay = retry_delay
        self._next = 0

    def _candidates(self) -> list[_Remote]:
        """The remotes to try for one connection, in order: those in use, round-robin from the next."""
        now = trio.current_time()
        start = self._next % len(self._remotes)
        self._next += 1
        ordered = self._remotes[start:] + self._remotes[:start]
        return [remote for remote in ordered if remote.out_of_use_until <= now]

    async def _dial(self) -> trio.SocketStream | None:
        for remote in self._candidates():
            try:
                with trio.fail_after(DIAL_TIMEOUT):
                    return await trio.open_tcp_stream(remote.endpoint.host, remote.endpoint.port)
            except (OSError, trio.TooSlowError) as exc:
                remote.out_of_use_until = trio.current_time() + self._retry_delay
                log.warning(
                    "failed to connect to endpoint; retrying later", remote=remote.endpoint.address, error=str(exc)
                )
        return None

    async def handle(self, client: trio.SocketStream) -> None:
        async with client:
            upstream = await self._dial()
            if upstream is None:
                log.warning("no endpoint available; closing the client connection")
                return
            async with upstream:
                await splice(client, upstream)

    async def serve(self, host: str, port: int, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trio.serve_listeners, self.handle, listeners))
            task_status.started(listeners[0].socket.getsockname()[1])


def main(argv: list[str]) -> int:
    if argv[:1] != ["start"]:
        sys.stderr.write("usage: etcdx gateway start [flags]\n")
        return 1
    try:
        values = parse(FLAGS, argv[1:])
        if values is None:
            sys.stdout.write(usage("gateway start", "start the gateway", FLAGS))
            return 0
        if values["discovery_srv"]:
            raise FlagError("--discovery-srv is not supported by etcdx (it needs DNS SRV records); give --endpoints")
        endpoints = parse_endpoints(str(values["endpoints"]))
        host, port = parse_listen_addr(str(values["listen_addr"]))
    except (FlagError, ValueError) as exc:
        sys.stderr.write(f"etcdx gateway: {exc}\n")
        return 1
    gateway = Gateway(endpoints, float(values["retry_delay"]))

    async def serve(task_status=trio.TASK_STATUS_IGNORED) -> None:
        await gateway.serve(host, port, task_status=task_status)

    def ready(bound_port: int) -> None:
        log.info(
            "ready to proxy client requests",
            listen_addr=f"{host}:{bound_port}",
            endpoints=[e.address for e in endpoints],
        )

    return run_until_signal(serve, ready)
