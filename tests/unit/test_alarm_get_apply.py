"""Alarm GET goes through the log, as etcd 3.5's does: applied, it answers the active alarms (filtered by
member and type), takes the entry's index and changes nothing else; with auth on, any user may list."""

from __future__ import annotations

from etcdx import errors
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdxpb.internal_pb2 import AuthHeader
from tests.unit.test_apply_auth import secured  # noqa: F401 - the fixture: root, alice, auth enabled

Alarm = pb.AlarmRequest


def listed(response: pb.AlarmResponse) -> list[tuple[int, int]]:
    return [(a.memberID, a.alarm) for a in response.alarms]


def test_get_answers_the_active_alarms_filtered_and_takes_an_index(store):
    store.apply(alarm=Alarm(action=Alarm.ACTIVATE, memberID=7, alarm=pb.NOSPACE))
    store.apply(alarm=Alarm(action=Alarm.ACTIVATE, memberID=9, alarm=pb.CORRUPT))
    revision, index, kvs, alarms = store.state()
    assert listed(store.apply(alarm=Alarm(action=Alarm.GET))) == [(7, pb.NOSPACE), (9, pb.CORRUPT)]
    assert listed(store.apply(alarm=Alarm(action=Alarm.GET, memberID=9))) == [(9, pb.CORRUPT)]
    assert listed(store.apply(alarm=Alarm(action=Alarm.GET, alarm=pb.NOSPACE))) == [(7, pb.NOSPACE)]
    assert listed(store.apply(alarm=Alarm(action=Alarm.GET, memberID=7, alarm=pb.CORRUPT))) == []
    assert store.state() == (revision, index + 4, kvs, alarms)


def test_any_user_may_list_alarms_but_only_root_changes_them(secured):  # noqa: F811
    alice = AuthHeader(username="alice", revision=secured.applier.auth.revision)
    secured.apply(
        auth=AuthHeader(username="root", revision=alice.revision),
        alarm=Alarm(action=Alarm.ACTIVATE, memberID=7, alarm=pb.NOSPACE),
    )
    assert listed(secured.apply(auth=alice, alarm=Alarm(action=Alarm.GET))) == [(7, pb.NOSPACE)]
    refused = secured.apply(auth=alice, alarm=Alarm(action=Alarm.DEACTIVATE, memberID=7, alarm=pb.NOSPACE))
    assert isinstance(refused, errors.ERR_PERMISSION_DENIED)
