"""Bad peer input: garbage on the peer port, another cluster's messages, a removed member still sending.
Each is refused and logged (once per sender and reason), and the member keeps taking a good peer's messages."""

import pytest
import trio

from etcdx.raft.messages import Message, MessageType
from tests.support.peer_members import CLUSTER_ID, attach_log, connect_all, start_member, wait_until


def heartbeat(sender: int, to: int, commit: int = 0) -> Message:
    return Message(MessageType.HEARTBEAT, to=to, sender=sender, term=4, commit=commit)


@pytest.fixture
def peer_log():
    lines, detach = attach_log()
    yield lines
    detach()


async def good_peer_gets_through(good, member, commit: int) -> None:
    good.transport.send([heartbeat(good.id, member.id, commit)])
    await wait_until(lambda: any(m.commit == commit for m in member.received_from(good.id)))


async def closed_by_member(stream: trio.SocketStream) -> bool:
    """Whether the member closed the connection (reads end) within 5 s."""
    with trio.move_on_after(5):
        try:
            while await stream.receive_some(4096):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET /raft/stream/message/1 HTTP/1.1\r\nHost: x\r\n\r\n",  # an etcd peer's HTTP
        b"\x00\x00\x00\x05\xff\xff\xff\xff\xff",  # a frame that is not protobuf
        b"\x7f\xff\xff\xff",  # a 2 GiB length prefix
        b"\x00\x00\x00\x02\x08\x01",  # a frame with no body
    ],
    ids=["http", "not-protobuf", "huge-length", "no-body"],
)
async def test_garbage_on_the_peer_port_is_refused_and_logged(nursery, peer_log, garbage):
    member, good = await start_member(nursery, 1), await start_member(nursery, 2)
    connect_all([member, good])
    for _ in range(2):
        stream = await trio.open_tcp_stream("127.0.0.1", member.port)
        await stream.send_all(garbage)
        assert await closed_by_member(stream)
        await stream.aclose()
    [refusal] = peer_log.named("failed to decode Raft message")  # logged once for the two connections
    assert refusal["remote"].startswith("127.0.0.1:") and refusal["error"]
    assert member.received == []
    await good_peer_gets_through(good, member, commit=11)


async def test_a_local_message_type_from_the_network_is_refused(nursery, peer_log):
    member, good = await start_member(nursery, 1), await start_member(nursery, 2)
    connect_all([member, good])
    good.transport.send([Message(MessageType.HUP, to=1, sender=2)])  # only ever made inside a member
    await wait_until(lambda: peer_log.named("failed to decode Raft message"))
    assert "local message type MsgHup" in peer_log.named("failed to decode Raft message")[0]["error"]
    await good_peer_gets_through(good, member, commit=12)
    assert [m.type for m in member.received] == [MessageType.HEARTBEAT]


async def test_another_clusters_messages_are_refused_and_logged(nursery, peer_log):
    member, good = await start_member(nursery, 1), await start_member(nursery, 2)
    stranger = await start_member(nursery, 2, cluster_id=0xBAD, backoff_min=0.01, backoff_max=0.01)
    connect_all([member, good])
    stranger.transport.add_peer(1, [member.url])
    for commit in range(1, 30):
        stranger.transport.send([heartbeat(2, 1, commit)])
        await trio.sleep(0.01)  # reconnects after each refusal
    await wait_until(lambda: peer_log.named("request cluster ID mismatch"))
    [refusal] = peer_log.named("request cluster ID mismatch")
    assert refusal["local_member_cluster_id"] == f"{CLUSTER_ID:x}" and refusal["remote_peer_cluster_id"] == "bad"
    assert member.received == []
    await good_peer_gets_through(good, member, commit=100)
    assert [m.commit for m in member.received] == [100]
    [told] = peer_log.named("request sent was ignored by remote peer")  # the stranger's side, once
    assert told["reason"] == "request cluster ID mismatch" and told["remote_peer_id"] == "1"


async def test_a_removed_member_still_sending_is_refused_and_logged(nursery, peer_log):
    member, good, removed = [await start_member(nursery, i, backoff_min=0.01, backoff_max=0.01) for i in (1, 2, 3)]
    connect_all([member, good, removed])
    removed.transport.send([heartbeat(3, 1, 1)])
    await wait_until(lambda: member.received_from(3))

    member.transport.remove_peer(3)
    for commit in range(2, 30):
        removed.transport.send([heartbeat(3, 1, commit)])
        await trio.sleep(0.01)
    await wait_until(lambda: peer_log.named("rejected stream from remote peer because it was removed"))
    [refusal] = peer_log.named("rejected stream from remote peer because it was removed")
    assert refusal["remote_peer_id"] == "3" and refusal["local_member_id"] == "1"
    assert [m.commit for m in member.received_from(3)] == [1]
    [told] = peer_log.named("request sent was ignored by remote peer")
    assert told["reason"] == "rejected stream from remote peer because it was removed"
    await good_peer_gets_through(good, member, commit=100)
    member.transport.send([heartbeat(1, 3)])  # and it sends nothing to the removed member
    assert member.transport.peer_ids() == [2]


async def test_a_message_for_another_member_is_refused(nursery, peer_log):
    member, good = await start_member(nursery, 1), await start_member(nursery, 2)
    connect_all([member, good])
    good.transport.add_peer(5, [member.url])  # member 5's URL is wrongly member 1's
    good.transport.send([heartbeat(2, 5)])
    await wait_until(lambda: peer_log.named("rejected stream from remote peer because it was sent to another member"))
    await good_peer_gets_through(good, member, commit=7)
    assert [m.to for m in member.received] == [1]
