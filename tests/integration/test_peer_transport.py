"""PeerTransport on real loopback sockets: members exchange messages, ride out a peer going down, drop and
report when a queue is full, stream a large snapshot, and speak TLS on https:// peer URLs."""

import os
import ssl

import pytest
import trio

from etcdx.net.self_cert import self_signed_cert
from etcdx.net.tls import ServerTls, TlsSettings
from etcdx.peer.client_tls import peer_client_context
from etcdx.raft.messages import ConfState, Entry, Message, MessageType, Snapshot
from tests.support.peer_members import attach_log, connect_all, start_member, wait_until
from tests.support.tls_certs import make_certs


def app(sender: int, to: int, index: int) -> Message:
    return Message(
        MessageType.APP, to=to, sender=sender, term=2, log_term=2, index=index - 1, commit=index - 1,
        entries=(Entry(2, index, data=f"put {sender}->{to} #{index}".encode()),),
    )  # fmt: skip


@pytest.fixture
def peer_log():
    lines, detach = attach_log()
    yield lines
    detach()


async def test_three_members_exchange_messages_in_order(nursery):
    members = [await start_member(nursery, i) for i in (1, 2, 3)]
    connect_all(members)
    await wait_until(lambda: all(a.transport.is_active(b.id) for a in members for b in members if a is not b))
    for a in members:
        for b in members:
            if a is not b:
                a.transport.send([app(a.id, b.id, i) for i in range(1, 201)])
    await wait_until(lambda: all(len(m.received) == 400 for m in members))
    for b in members:
        for a in members:
            if a is not b:
                assert b.received_from(a.id) == [app(a.id, b.id, i) for i in range(1, 201)]


async def test_a_peer_down_then_up_gets_messages_again(nursery, peer_log):
    a, b = await start_member(nursery, 1, backoff_max=0.2), await start_member(nursery, 2)
    connect_all([a, b])
    a.transport.send([app(1, 2, 1)])
    await wait_until(lambda: len(b.received) == 1)

    b.stop_listener()  # the listener's open connections go with it
    await wait_until(lambda: a.unreachable[2] >= 2)  # the connection broke, and reconnecting fails
    assert not a.transport.is_active(2)
    assert peer_log.named("peer became inactive (message send to peer failed)")
    a.transport.send([app(1, 2, i) for i in range(2, 102)])  # while b is down: 64 wait, the rest are dropped
    assert a.unreachable[2] >= 2 + 100 - 64

    await b.start_listener(nursery)  # the same port again
    await wait_until(lambda: a.transport.is_active(2))
    a.transport.send([app(1, 2, 200)])
    await wait_until(lambda: b.received[-1] == app(1, 2, 200))
    assert b.received[0] == app(1, 2, 1) and len(b.received) <= 1 + 64 + 1
    indexes = [m.index + 1 for m in b.received]
    assert indexes == sorted(indexes)  # whatever waited arrived in order, before the new message
    assert len(peer_log.named("peer became active")) >= 2


async def test_update_peer_moves_the_connection_to_the_new_url(nursery):
    a, b = await start_member(nursery, 1), await start_member(nursery, 2)
    connect_all([a, b])
    a.transport.send([app(1, 2, 1)])
    await wait_until(lambda: len(b.received) == 1)
    old_port = b.port
    b.stop_listener()
    await wait_until(lambda: not a.transport.is_active(2))
    b.port = 0
    await b.start_listener(nursery)  # b moved to a new port
    assert b.port != old_port
    a.transport.update_peer(2, [f"http://127.0.0.1:{old_port}", b.url])  # the old URL first: it fails over
    await wait_until(lambda: a.transport.is_active(2))
    a.transport.send([app(1, 2, 2)])
    await wait_until(lambda: len(b.received) == 2)
    assert b.received == [app(1, 2, 1), app(1, 2, 2)]


async def test_a_full_queue_drops_messages_and_reports_the_peer_unreachable(nursery, peer_log):
    a, b = await start_member(nursery, 1), await start_member(nursery, 2)
    connect_all([a, b])
    await wait_until(lambda: a.transport.is_active(2))
    # One send() runs to its end before the connection's writer can take anything from the queue.
    a.transport.send([app(1, 2, i) for i in range(1, 4096 + 101)])
    # etcd's 4096-message buffer, each drop reported (the writer, waiting, may take one off the queue at once).
    assert a.unreachable[2] in (99, 100)
    drops = peer_log.named("dropped internal Raft message since sending buffer is full (overloaded network)")
    assert len(drops) == 1 and drops[0]["remote_peer_id"] == "2"  # logged once per run of drops
    sent = 4196 - a.unreachable[2]
    await wait_until(lambda: len(b.received) == sent)
    assert b.received == [app(1, 2, i) for i in range(1, sent + 1)]  # the queued ones all arrive, in order
    a.transport.send([app(1, 2, 5000)])  # and the queue takes messages again
    await wait_until(lambda: len(b.received) == sent + 1)


async def test_a_20mb_snapshot_arrives_intact_in_chunks_while_heartbeats_flow(nursery, peer_log):
    a, b = await start_member(nursery, 1), await start_member(nursery, 2)
    connect_all([a, b])
    data = os.urandom(20 * 1024 * 1024)
    snapshot = Snapshot(index=5000, term=3, conf_state=ConfState(frozenset({1, 2}), frozenset({9})), data=data)
    a.transport.send([Message(MessageType.SNAP, to=2, sender=1, term=3, snapshot=snapshot)])
    a.transport.send([Message(MessageType.HEARTBEAT, to=2, sender=1, term=3, commit=5000)])
    await wait_until(lambda: a.snapshot_status, timeout=60)
    assert a.snapshot_status == [(2, False)]
    [snap] = [m for m in b.received if m.type is MessageType.SNAP]
    assert snap.snapshot == snapshot
    assert any(m.type is MessageType.HEARTBEAT for m in b.received)
    [received] = peer_log.named("received and saved database snapshot")
    assert received["chunks"] == 20 and received["size"] == len(data)


async def test_a_snapshot_to_a_peer_that_is_down_is_reported_failed(nursery):
    a, b = await start_member(nursery, 1), await start_member(nursery, 2)
    b.stop_listener()
    await trio.sleep(0.05)
    connect_all([a, b])
    a.transport.send([Message(MessageType.SNAP, to=2, sender=1, term=3, snapshot=Snapshot(7, 3, data=b"x" * 10))])
    await wait_until(lambda: a.snapshot_status)
    assert a.snapshot_status == [(2, True)]


async def test_https_peers_exchange_messages(nursery, tmp_path):
    certs = make_certs(tmp_path)
    server_tls = ServerTls(
        TlsSettings(certs.server_cert, certs.server_key, trusted_ca_file=certs.ca, client_cert_auth=True)
    )
    client_tls = peer_client_context(TlsSettings(certs.client_cert, certs.client_key, trusted_ca_file=certs.ca))
    a = await start_member(nursery, 1, tls=server_tls, client_tls=client_tls)
    b = await start_member(nursery, 2, tls=server_tls, client_tls=client_tls)
    connect_all([a, b])
    a.transport.send([app(1, 2, i) for i in range(1, 11)])
    b.transport.send([app(2, 1, i) for i in range(1, 11)])
    b.transport.send([Message(MessageType.SNAP, to=1, sender=2, term=3, snapshot=Snapshot(9, 3, data=b"db" * 1000))])
    await wait_until(lambda: len(a.received) == 11 and len(b.received) == 10 and b.snapshot_status)
    assert b.received == [app(1, 2, i) for i in range(1, 11)]
    assert b.snapshot_status == [(1, False)]
    assert a.received[-1].snapshot.data == b"db" * 1000


async def test_an_https_peer_without_a_client_certificate_is_refused(nursery, tmp_path):
    certs = make_certs(tmp_path)
    server_tls = ServerTls(
        TlsSettings(certs.server_cert, certs.server_key, trusted_ca_file=certs.ca, client_cert_auth=True)
    )
    anonymous = ssl.create_default_context(cafile=certs.ca)  # trusts the member, shows no certificate
    member = await start_member(nursery, 1, tls=server_tls)
    stranger = await start_member(nursery, 2, tls=server_tls, client_tls=anonymous, backoff_max=0.05)
    stranger.transport.add_peer(1, [member.url])
    stranger.transport.send([app(2, 1, 1)])
    await wait_until(lambda: stranger.unreachable[1] >= 3)  # each attempt fails and is reported
    assert member.received == []


async def test_auto_tls_peers_exchange_messages_with_self_signed_certificates(nursery, tmp_path):
    cert, key = self_signed_cert(str(tmp_path / "fixtures" / "peer"), ("127.0.0.1",), 1)
    settings = TlsSettings(cert, key, verify_client_san=True)  # what --peer-auto-tls gives the listener
    client_tls = peer_client_context(settings, auto_tls=True)
    a = await start_member(nursery, 1, tls=ServerTls(settings), client_tls=client_tls)
    b = await start_member(nursery, 2, tls=ServerTls(settings), client_tls=client_tls)
    connect_all([a, b])
    a.transport.send([app(1, 2, 1)])
    await wait_until(lambda: b.received == [app(1, 2, 1)])


async def test_a_member_whose_certificate_the_ca_did_not_sign_is_not_trusted(nursery, tmp_path):
    (tmp_path / "ours").mkdir(), (tmp_path / "theirs").mkdir()
    certs, other = make_certs(tmp_path / "ours"), make_certs(tmp_path / "theirs")
    member = await start_member(nursery, 1, tls=ServerTls(TlsSettings(other.server_cert, other.server_key)))
    client_tls = peer_client_context(TlsSettings(certs.client_cert, certs.client_key, trusted_ca_file=certs.ca))
    sender = await start_member(nursery, 2, client_tls=client_tls, backoff_max=0.05)
    sender.transport.add_peer(1, [member.url])
    sender.transport.send([app(2, 1, 1)])
    await wait_until(lambda: sender.unreachable[1] >= 3)
    assert member.received == [] and not sender.transport.is_active(1)


async def test_removing_a_peer_mid_snapshot_reports_it_failed_and_the_rest_carry_on(nursery):
    a, b, c = [await start_member(nursery, i) for i in (1, 2, 3)]
    connect_all([a, b, c])
    await wait_until(lambda: a.transport.is_active(2) and a.transport.is_active(3))
    big = Snapshot(index=9, term=3, data=os.urandom(8 * 1024 * 1024))
    a.transport.send([Message(MessageType.SNAP, to=2, sender=1, term=3, snapshot=big)])
    await trio.sleep(0)  # the snapshot's task has started
    a.transport.remove_peer(2)
    await wait_until(lambda: a.snapshot_status)
    assert a.snapshot_status == [(2, True)]
    assert a.transport.peer_ids() == [3]
    a.transport.send([app(1, 2, 1), app(1, 3, 1)])  # 2 is gone: nothing is sent to it
    await wait_until(lambda: c.received == [app(1, 3, 1)])
    assert not any(m.type is MessageType.APP for m in b.received)
