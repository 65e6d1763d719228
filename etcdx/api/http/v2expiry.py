"""The member's own v2 writes: after a restart it publishes its attributes again (as etcd does), and, the
leader's side of v2 TTLs (etcd's SYNC), while the v2 store holds nodes with a TTL, every 500 ms a SYNC request
with the member's clock goes through the log, and applying it removes the nodes expired by then."""

from __future__ import annotations

import contextlib
import time

import trio

from etcdx import errors
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest, V2Request
from etcdx.server.server import EtcdServer
from etcdx.v2store.bootstrap import attributes_request

SYNC_INTERVAL = 0.5


async def run_expiry(server: EtcdServer) -> None:
    """Runs until cancelled; a SYNC the log refuses (too many requests) is retried at the next tick."""
    store = server.v2store
    if store.restored:
        with trio.move_on_after(5), contextlib.suppress(errors.EtcdError):
            await server.propose(InternalRequest(v2=attributes_request(server.settings)))
    while True:
        await trio.sleep(SYNC_INTERVAL)
        if store.has_ttl_nodes:
            with trio.move_on_after(5), contextlib.suppress(errors.EtcdError):
                await server.propose(InternalRequest(v2=V2Request(method="SYNC", time=time.time_ns())))
