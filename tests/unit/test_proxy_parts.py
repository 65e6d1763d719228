"""The grpc-proxy's pure parts: the namespace's key rewriting, the Range cache's invalidation and bound, a
coalesced watcher's filtering, and the proxy commands' flag syntax."""

from __future__ import annotations

import random
import struct

import pytest
from prometheus_client import CollectorRegistry

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.mvccpb import kv_pb2
from etcdx.proxy import gateway
from etcdx.proxy.flags import FlagError, go_duration, parse
from etcdx.proxy.namespace import Namespace, prefix_end
from etcdx.proxy.range_cache import RangeCache, _meets
from etcdx.proxy.upstream import MAX_RECV_MESSAGE, Endpoint, UpstreamCall, parse_endpoints
from etcdx.proxy.watch_broadcast import Receiver


def test_prefix_end():
    assert prefix_end(b"a/") == b"a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"


def test_namespace_requests_and_responses():
    ns = Namespace(b"t/")
    assert ns.range(b"k", b"") == (b"t/k", b"")
    assert ns.range(b"a", b"b") == (b"t/a", b"t/b")
    assert ns.range(b"", b"\0") == (b"t/", b"t0")  # --from-key "": the whole namespace, nothing past it
    txn = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"c")],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"p"))],
        failure=[
            rpc_pb2.RequestOp(
                request_txn=rpc_pb2.TxnRequest(
                    success=[
                        rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"d", range_end=b"e"))
                    ]
                )
            )
        ],
    )
    ns.txn_request(txn)
    assert txn.compare[0].key == b"t/c"
    assert txn.success[0].request_put.key == b"t/p"
    nested = txn.failure[0].request_txn.success[0].request_delete_range
    assert (nested.key, nested.range_end) == (b"t/d", b"t/e")
    response = rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(key=b"t/k")])
    ns.range_response(response)
    assert response.kvs[0].key == b"k"
    with pytest.raises(errors.EtcdError) as raised:
        ns.put_request(rpc_pb2.PutRequest(key=b""))
    assert raised.value.message == "etcdserver: key is not provided"


def test_empty_namespace_changes_nothing():
    ns = Namespace(b"")
    assert ns.range(b"", b"\0") == (b"", b"\0")
    request = rpc_pb2.PutRequest(key=b"")
    ns.put_request(request)  # the upstream gives its own error for an empty key
    assert request.key == b""


def _range(key: bytes, end: bytes = b"", **extra) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(key=key, range_end=end, serializable=True, **extra)


def test_cache_hits_and_invalidation():
    cache = RangeCache(CollectorRegistry())
    cache.add(_range(b"a"), b"A")
    cache.add(_range(b"b", b"d"), b"BD")
    cache.add(_range(b"x", b"\0"), b"X+")
    linearizable = rpc_pb2.RangeRequest(key=b"a")
    assert cache.get(_range(b"a")) == b"A"
    cache.add(linearizable, b"A2")  # a linearizable answer is stored as the serializable one
    assert cache.get(_range(b"a")) == b"A2"
    cache.invalidate(b"c", b"")
    assert cache.get(_range(b"b", b"d")) is None
    assert cache.get(_range(b"a")) == b"A2"
    cache.invalidate(b"zzz", b"")
    assert cache.get(_range(b"x", b"\0")) is None
    txn = rpc_pb2.TxnRequest(failure=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a"))])
    cache.invalidate_txn(txn)
    assert cache.get(_range(b"a")) is None


def test_cache_entries_answer_only_their_caller():
    cache = RangeCache(CollectorRegistry())
    root = (("token", "root-token"),)
    cache.add(_range(b"secret"), b"S", root)
    assert cache.get(_range(b"secret"), root) == b"S"
    assert cache.get(_range(b"secret"), (("token", "other"),)) is None
    assert cache.get(_range(b"secret")) is None
    cache.invalidate(b"secret", b"")
    assert cache.get(_range(b"secret"), root) is None


def test_go_duration():
    assert [go_duration(s) for s in (5, 60, 90, 7200)] == ["5s", "1m0s", "1m30s", "2h0m0s"]


def test_cache_is_bounded_and_skips_fixed_revisions():
    cache = RangeCache(CollectorRegistry(), max_entries=3)
    for i in range(5):
        cache.add(_range(b"k%d" % i), b"%d" % i)
    assert [cache.get(_range(b"k%d" % i)) for i in range(5)] == [None, None, b"2", b"3", b"4"]
    cache.add(_range(b"old", revision=5), b"R5")
    assert cache.get(_range(b"old", revision=5)) is None


def _event(kind, revision: int, prev: bool = True) -> kv_pb2.Event:
    kv = kv_pb2.KeyValue(key=b"k", mod_revision=revision)
    return kv_pb2.Event(type=kind, kv=kv, prev_kv=kv_pb2.KeyValue(key=b"k") if prev else None)


def test_receiver_filters_events():
    got: list[rpc_pb2.WatchResponse] = []
    receiver = Receiver(
        watch_id=7,
        key=b"k",
        range_end=b"",
        start_revision=5,
        prev_kv=False,
        progress_notify=False,
        filters=frozenset([rpc_pb2.WatchCreateRequest.NODELETE]),
        deliver=got.append,
    )
    events = [_event(kv_pb2.Event.PUT, 4), _event(kv_pb2.Event.PUT, 5), _event(kv_pb2.Event.DELETE, 6)]
    receiver.send_events(rpc_pb2.ResponseHeader(revision=6), events)
    assert len(got) == 1
    assert got[0].watch_id == 7
    assert [e.kv.mod_revision for e in got[0].events] == [5]
    assert not got[0].events[0].HasField("prev_kv")
    receiver.send_events(rpc_pb2.ResponseHeader(revision=7), [_event(kv_pb2.Event.DELETE, 7)])
    assert len(got) == 1  # nothing left after the filter: nothing sent


def test_flags_and_endpoints():
    values = parse(gateway.FLAGS, ["--endpoints", "http://a:1,b:2", "--retry-delay=1m30s", "--insecure-discovery"])
    assert values["retry_delay"] == 90.0 and values["insecure_discovery"] is True
    assert parse_endpoints(values["endpoints"]) == [Endpoint("a", 1, False), Endpoint("b", 2, False)]
    assert parse_endpoints("https://[::1]:2379") == [Endpoint("::1", 2379, True)]
    assert parse(gateway.FLAGS, ["--help"]) is None
    with pytest.raises(FlagError):
        parse(gateway.FLAGS, ["--no-such-flag"])
    with pytest.raises(ValueError):
        parse_endpoints("nohost")


async def test_upstream_call_frames_messages_and_refuses_oversized_ones():
    call = UpstreamCall(None, 1)
    framed = struct.pack(">BI", 0, 3) + b"abc" + struct.pack(">BI", 0, 2)
    assert call._on_data(framed, 0)  # 0: no window to reopen (no connection here)
    assert call._on_data(b"de", 0)  # the second message completes in a later DATA frame
    assert [await call.receive(), await call.receive()] == [b"abc", b"de"]
    huge = UpstreamCall(None, 3)
    assert not huge._on_data(struct.pack(">BI", 0, MAX_RECV_MESSAGE + 1), 5)
    with pytest.raises(errors.EtcdError) as raised:
        await huge.receive()
    assert raised.value.code == errors.StatusCode.RESOURCE_EXHAUSTED


def test_cache_invalidation_matches_a_full_scan():
    """The key index finds exactly what checking every entry against the write would find."""
    rng = random.Random(7)
    keys = [b"k%d" % i for i in range(12)]
    cache = RangeCache(CollectorRegistry(), max_entries=40)
    model: dict[bytes, tuple[bytes, bytes]] = {}  # request bytes -> (key, end), for what the cache should hold
    for _ in range(2000):
        lo = rng.choice(keys)
        if rng.random() < 0.6:
            end = rng.choice([b"", b"", b"\0", rng.choice(keys)])
            request = _range(lo, end)
            cache.add(request, b"r")
            model.pop(request.SerializeToString(), None)  # added again: the most recent
            model[request.SerializeToString()] = (lo, end)
            model = dict(list(model.items())[-40:])  # the cache's bound drops the least recently added
        else:
            end = rng.choice([b"", b"", rng.choice(keys)])
            cache.invalidate(lo, end)
            model = {r: (k, e) for r, (k, e) in model.items() if not _meets(k, e, lo, end)}
    held = {r for r in model if cache.get(rpc_pb2.RangeRequest.FromString(r)) is not None}
    assert held == set(model)
    assert len(cache._entries) == len(model) == sum(map(len, cache._single.values())) + len(cache._ranged)
