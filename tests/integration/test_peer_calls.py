"""PeerTransport.call on real loopback sockets: a member asks another (a lease renewal forwarded to the
leader, a HashKV), gets its answer or its etcd error back; a peer that is down, serves no calls, or belongs
to another cluster gives no answer (PeerCallFailed or the refusal), and the transport goes on serving."""

import pytest
import trio

from etcdx import errors
from etcdx.peer.transport import PeerCallFailed
from tests.support.peer_members import connect_all, start_member


async def echo(method: str, request: bytes) -> bytes:
    if method == "fail":
        raise errors.ERR_NOT_LEADER
    if method == "slow":
        await trio.sleep(10)
    if method == "broken":
        raise ValueError("a bug, or a request it could not decode")
    return method.encode() + b":" + request


async def test_a_call_gets_the_peers_answer_or_its_etcd_error(nursery):
    a, b = await start_member(nursery, 1), await start_member(nursery, 2, on_call=echo)
    connect_all([a, b])
    assert await a.transport.call(2, "renew", b"\x08\x01", timeout=5) == b"renew:\x08\x01"
    with pytest.raises(errors.EtcdError) as refused:
        await a.transport.call(2, "fail", b"", timeout=5)
    assert (refused.value.code, refused.value.message) == (
        errors.StatusCode.FAILED_PRECONDITION,
        "etcdserver: not leader",
    )
    # A handler that fails any other way answers INTERNAL; the transport goes on serving calls.
    with pytest.raises(errors.EtcdError) as broken:
        await a.transport.call(2, "broken", b"", timeout=5)
    assert broken.value.code == errors.StatusCode.INTERNAL
    # Calls run side by side, each on its own connection.
    results = []
    async with trio.open_nursery() as calls:
        for n in range(20):
            calls.start_soon(lambda n=n: _append(results, a.transport.call(2, "m", b"%d" % n, timeout=5)))
    assert sorted(results) == sorted(b"m:%d" % n for n in range(20))


async def test_connections_are_kept_for_the_next_call_and_replaced_when_closed(nursery):
    a, b = await start_member(nursery, 1), await start_member(nursery, 2, on_call=echo)
    connect_all([a, b])
    for n in range(50):
        assert await a.transport.call(2, "renew", b"%d" % n, timeout=5) == b"renew:%d" % n
    assert len(a.transport._idle_calls[2]) == 1  # one connection served the 50 calls in turn
    b.stop_listener()  # its open connections go with it: the kept one is dead now
    await b.start_listener(nursery)
    assert await a.transport.call(2, "renew", b"again", timeout=5) == b"renew:again"


async def _append(results, call):
    results.append(await call)


async def test_calls_that_get_no_answer_fail_within_their_timeout(nursery):
    a, b = await start_member(nursery, 1), await start_member(nursery, 2, on_call=echo)
    quiet = await start_member(nursery, 3)  # serves no calls
    connect_all([a, b, quiet])
    with trio.fail_after(3):
        with pytest.raises(PeerCallFailed):
            await a.transport.call(2, "slow", b"", timeout=0.5)
    with pytest.raises(errors.EtcdError) as unserved:
        await a.transport.call(3, "renew", b"", timeout=5)
    assert unserved.value.code == errors.StatusCode.UNIMPLEMENTED
    with pytest.raises(PeerCallFailed):
        await a.transport.call(9, "renew", b"", timeout=5)  # not a peer
    b.stop_listener()
    with pytest.raises(PeerCallFailed):
        await a.transport.call(2, "renew", b"", timeout=2)


async def test_a_call_from_another_cluster_is_refused(nursery):
    a = await start_member(nursery, 1, cluster_id=0xDEAD)
    b = await start_member(nursery, 2, on_call=echo)
    connect_all([a, b])
    with pytest.raises(PeerCallFailed, match="request cluster ID mismatch"):
        await a.transport.call(2, "renew", b"", timeout=5)
