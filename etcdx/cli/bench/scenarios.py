"""Request/response scenarios of `etcdx bench`: what one client does per request.

Each scenario is a factory taking (options, stubs, rng, offset) and returning an async callable that
makes one request (raising on failure) and returns an outcome label to count (a failed compare, the
size of a first reply) or None. Keys follow etcd's benchmark tool: fixed size, random or sequential
over a key space.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from etcdx.mvcc.keys import prefix_end
from etcdx.pb.etcdserverpb import rpc_pb2

Request = Callable[[], Awaitable[str | None]]


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


def range_message(options) -> rpc_pb2.RangeRequest:
    key = options.range_key.encode()
    end = prefix_end(key) if options.prefix else options.range_end.encode()
    serializable = options.consistency == "s"
    return rpc_pb2.RangeRequest(key=key, range_end=end, serializable=serializable, limit=options.limit)


def first_reply_label(response: rpc_pb2.RangeResponse) -> str:
    """What a client's first Range reply held: the report counts clients per label (a page's size shows)."""
    return f"first reply: {len(response.kvs)} kvs"


def range_(options, stubs, rng, offset) -> Request:
    message = range_message(options)
    seen = [False]

    async def request() -> str | None:
        response = await stubs.kv.Range(message)
        if seen[0]:
            return None
        seen[0] = True
        return first_reply_label(response)

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


CAS_SUCCEEDED = "compare succeeded"
CAS_FAILED = "compare failed"


def cas_key(offset: int, index: int) -> bytes:
    """Key ``index`` of the txn-cas client at ``offset`` (its keys are its own)."""
    return b"/registry/cas/%07d/%05d" % (offset, index)


class CasClient:
    """One txn-cas client, as a Kubernetes update: Txn(if mod_revision(key) == the revision this client last
    saw, then Put(key), else Range(key)). It owns --key-space-size keys, updates them round robin and
    remembers each key's mod_revision: the header revision of a succeeded Txn (its Put's revision), or the
    mod_revision the else-Range read (0: no key). A client's first update of a key that exists fails once
    (it has seen no revision of it yet), as a stale cache's update does; a failed compare is an outcome, not
    an error."""

    def __init__(self, options, offset: int) -> None:
        self.keys = [cas_key(offset, i) for i in range(options.key_space_size)]
        self.seen = dict.fromkeys(self.keys, 0)
        self.value = b"v" * options.val_size
        self.turn = 0
        self.key = self.keys[0]

    def next_txn(self) -> rpc_pb2.TxnRequest:
        self.key = key = self.keys[self.turn % len(self.keys)]
        self.turn += 1
        compare = rpc_pb2.Compare(
            key=key,
            target=rpc_pb2.Compare.MOD,
            result=rpc_pb2.Compare.EQUAL,
            mod_revision=self.seen[key],
        )
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=self.value))
        get = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))
        return rpc_pb2.TxnRequest(compare=[compare], success=[put], failure=[get])

    def learn(self, response: rpc_pb2.TxnResponse) -> str:
        """Remembers the key's revision from the answer to ``next_txn``; the outcome label."""
        if response.succeeded:
            self.seen[self.key] = response.header.revision
            return CAS_SUCCEEDED
        kvs = response.responses[0].response_range.kvs if response.responses else []
        self.seen[self.key] = kvs[0].mod_revision if kvs else 0
        return CAS_FAILED


def txn_cas(options, stubs, rng, offset) -> Request:
    client = CasClient(options, offset)

    async def request() -> str:
        return client.learn(await stubs.kv.Txn(client.next_txn()))

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
    "txn-cas": txn_cas,
    "lease-keepalive": lease_keepalive,
}
