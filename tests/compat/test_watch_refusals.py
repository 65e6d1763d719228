"""Refused watch creates over gRPC, on etcdx and on etcd 3.5.1 with auth on: the same watch ids, flags and
cancel reasons (a create refused for permission keeps its requested id and carries the gRPC error's text; an
empty range and a watch id in use answer id -1 with mvcc's text)."""

from __future__ import annotations

from etcdx.pb.etcdserverpb import rpc_pb2
from tests.integration.test_auth_holes import PASSWORD, Client, login, setup_users
from tests.support.auth_servers import make_material, secured

Create = rpc_pb2.WatchCreateRequest
STREAMS = [  # the creates sent on one stream, as alice (read on "foo" and its prefix)
    [Create(key=b"zoo")],
    [Create(key=b"zoo", watch_id=7)],
    [Create(key=b"fop", range_end=b"foo", watch_id=4)],  # empty range, readable start: refused for permission
    [Create(key=b"foo/b", range_end=b"foo/a", watch_id=4)],  # empty range inside the permission
    [Create(key=b"foo", watch_id=3), Create(key=b"foo/x", watch_id=3)],  # a watch id in use
    [Create(key=b"foo", watch_id=3), Create(key=b"zoo", watch_id=3)],  # refused for permission first
]


def _replies(alice: Client, creates: list[rpc_pb2.WatchCreateRequest]) -> list[tuple]:
    requests = [rpc_pb2.WatchRequest(create_request=create) for create in creates]
    stream = alice.watch.Watch(iter(requests), metadata=alice.md, timeout=10)
    replies = [next(stream) for _ in creates]
    stream.cancel()
    return [(r.watch_id, r.created, r.canceled, r.cancel_reason, list(r.events)) for r in replies]


def test_refused_watch_creates_answer_as_etcd(tmp_path):
    material = make_material(tmp_path)
    answers = {}
    for etcdx in (True, False):
        server = secured(tmp_path, material, etcdx=etcdx, tls=False, token="simple")
        with server.start(), server.channel() as channel:
            setup_users(Client(channel))
            alice = login(channel, "alice", PASSWORD)
            answers[etcdx] = [_replies(alice, creates) for creates in STREAMS]
    assert answers[True] == answers[False]
    denied = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    assert answers[True][1] == [(7, True, True, denied, [])]
