"""Request/response scenarios of `etcdx bench`: what one client does per request.

Each scenario is a factory taking (options, stubs, rng) and returning an async callable that makes
one request (raising on failure). Keys follow etcd's benchmark tool: fixed size, random or
sequential over a key space.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from etcdx.mvcc.keys import prefix_end
from etcdx.pb.etcdserverpb import rpc_pb2

Request = Callable[[], Awaitable[None]]


class Keys:
    def __init__(self, options, rng: random.Random, offset: int) -> None:
        self.size = options.key_size
        self.space = options.key_space_size
        self.sequential = options.sequential_keys
        self.random = rng.random
        self.next = offset

    def __call__(self) -> bytes:
        """The next key: its number in decimal, zero-padded (or cut) to exactly --key-size bytes."""
        if self.sequential:
            n = self.next % self.space
            self.next += 1
        else:
            n = int(self.random() * self.space)
        return (b"%0*d" % (self.size, n))[-self.size :]


def put(options, stubs, rng, offset) -> Request:
    keys, value = Keys(options, rng, offset), b"v" * options.val_size

    async def request() -> None:
        await stubs.kv.Put(rpc_pb2.PutRequest(key=keys(), value=value))

    return request


def range_(options, stubs, rng, offset) -> Request:
    key = options.range_key.encode()
    end = options.range_end.encode() if options.range_end else b""
    if options.prefix:
        end = prefix_end(key)
    serializable = options.consistency == "s"
    message = rpc_pb2.RangeRequest(key=key, range_end=end, serializable=serializable, limit=options.limit)

    async def request() -> None:
        await stubs.kv.Range(message)

    return request


def txn_put(options, stubs, rng, offset) -> Request:
    keys, value = Keys(options, rng, offset), b"v" * options.val_size

    async def request() -> None:
        puts = [rpc_pb2.PutRequest(key=keys(), value=value) for _ in range(options.txn_ops)]
        ops = [rpc_pb2.RequestOp(request_put=p) for p in puts]
        await stubs.kv.Txn(rpc_pb2.TxnRequest(success=ops))

    return request


def txn_mixed(options, stubs, rng, offset) -> Request:
    """Reads (a Range in a Txn) and writes (a Put in a Txn) in --rw-ratio proportion, as etcd's tool."""
    keys, value = Keys(options, rng, offset), b"v" * options.val_size
    read_share = options.rw_ratio / (options.rw_ratio + 1)
    serializable = options.consistency == "s"

    async def request() -> None:
        key = keys()
        if rng.random() < read_share:
            if serializable:
                await stubs.kv.Range(rpc_pb2.RangeRequest(key=key, serializable=True))
            else:
                op = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))
                await stubs.kv.Txn(rpc_pb2.TxnRequest(success=[op]))
        else:
            op = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))
            await stubs.kv.Txn(rpc_pb2.TxnRequest(success=[op]))

    return request


def lease_keepalive(options, stubs, rng, offset) -> Request:
    """One keep-alive round trip on a long-lived LeaseKeepAlive stream per client."""
    state: dict = {}

    async def request() -> None:
        if "call" not in state:
            granted = await stubs.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=100))
            state["id"] = granted.ID
            state["call"] = stubs.lease.LeaseKeepAlive()
        call = state["call"]
        await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=state["id"]))
        response = await call.read()
        if response.TTL <= 0:
            raise RuntimeError("lease expired")

    return request


SCENARIOS = {
    "put": put,
    "range": range_,
    "txn-put": txn_put,
    "txn-mixed": txn_mixed,
    "lease-keepalive": lease_keepalive,
}
