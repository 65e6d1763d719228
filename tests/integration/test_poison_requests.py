"""Poison requests: values a client controls that etcd 3.5.1 cannot answer (it panics, or persists what
breaks it later) get an error reply from etcdx, and the member stays up, restarts clean, and reports
the right Status and /health.

Each case runs against one real etcdx process; after all of them it is killed (kill -9) and restarted
on the same data dir. The WAL-replay test feeds the same poison to the log directly (as a member
would receive it from a leader that did not check it) and replays that log into an empty backend.
"""

from __future__ import annotations

import http.client
import json
import shutil
import urllib.error
import urllib.request

import grpc
import pytest
import trio

from etcdx.api.grpc.kv_checks import MAX_TXN_DEPTH
from etcdx.mvcc import rows
from etcdx.mvcc.backend import Backend
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdserverpb import rpc_pb2_grpc
from etcdx.pb.etcdxpb.internal_pb2 import InternalRequest
from etcdx.pb.grpc.health.v1 import health_pb2, health_pb2_grpc
from etcdx.pb.v3electionpb import v3election_pb2 as epb
from etcdx.pb.v3electionpb import v3election_pb2_grpc
from etcdx.pb.v3lockpb import v3lock_pb2 as lpb
from etcdx.pb.v3lockpb import v3lock_pb2_grpc
from etcdx.server.apply import ApplyFailed
from etcdx.server.server import EtcdServer
from etcdx.server.settings import ServerSettings
from tests.support.procs import etcd_process, etcdx_process
from tests.support.server_settings import server_settings

TIMEOUT = 10.0
INVALID = grpc.StatusCode.INVALID_ARGUMENT
Alarm = pb.AlarmRequest
RR = pb.RangeRequest


def nested_txn(levels: int) -> pb.TxnRequest:
    """A txn with ``levels`` txns in all (the outermost included), a put at the bottom."""
    top = pb.TxnRequest()
    inner = top
    for _ in range(levels - 1):
        inner = inner.success.add().request_txn
    inner.success.add().request_put.CopyFrom(pb.PutRequest(key=b"deep", value=b"v"))
    return top


def range_op(**fields) -> pb.RequestOp:
    return pb.RequestOp(request_range=RR(key=b"a", **fields))


# name -> (stub class, method, request, expected (code, details))
CASES = {
    "alarm activate -1": (
        rpc_pb2_grpc.MaintenanceStub,
        "Alarm",
        Alarm(action=Alarm.ACTIVATE, alarm=-1),
        (INVALID, "etcdserver: unknown alarm type -1"),
    ),
    "alarm activate 3": (
        rpc_pb2_grpc.MaintenanceStub,
        "Alarm",
        Alarm(action=Alarm.ACTIVATE, memberID=2**64 - 1, alarm=3),
        (INVALID, "etcdserver: unknown alarm type 3"),
    ),
    "alarm action 5": (
        rpc_pb2_grpc.MaintenanceStub,
        "Alarm",
        Alarm(action=5, alarm=pb.NOSPACE),
        (INVALID, "etcdserver: unknown alarm action 5"),
    ),
    "alarm action -2147483648": (
        rpc_pb2_grpc.MaintenanceStub,
        "Alarm",
        Alarm(action=-(2**31), alarm=pb.CORRUPT),
        (INVALID, "etcdserver: unknown alarm action -2147483648"),
    ),
    "range sort target 9": (
        rpc_pb2_grpc.KVStub,
        "Range",
        RR(key=b"a", sort_order=RR.ASCEND, sort_target=9),
        (INVALID, "etcdserver: unknown sort target 9"),
    ),
    "range sort target -1 order none": (
        rpc_pb2_grpc.KVStub,
        "Range",
        RR(key=b"a", sort_target=-1),
        (INVALID, "etcdserver: unknown sort target -1"),
    ),
    "txn range sort target 5": (
        rpc_pb2_grpc.KVStub,
        "Txn",
        pb.TxnRequest(success=[range_op(sort_order=RR.DESCEND, sort_target=5)]),
        (INVALID, "etcdserver: unknown sort target 5"),
    ),
    "writing txn range sort target 7": (
        rpc_pb2_grpc.KVStub,
        "Txn",
        pb.TxnRequest(
            success=[pb.RequestOp(request_put=pb.PutRequest(key=b"p")), range_op(sort_order=RR.NONE, sort_target=7)]
        ),
        (INVALID, "etcdserver: unknown sort target 7"),
    ),
    "txn nested past the limit": (
        rpc_pb2_grpc.KVStub,
        "Txn",
        nested_txn(MAX_TXN_DEPTH + 1),
        (INVALID, f"etcdserver: txn nested more than {MAX_TXN_DEPTH} levels deep"),
    ),
    "proclaim empty key": (
        v3election_pb2_grpc.ElectionStub,
        "Proclaim",
        epb.ProclaimRequest(leader=epb.LeaderKey(name=b"e"), value=b"v"),
        (grpc.StatusCode.UNKNOWN, "etcdserver: key is not provided"),
    ),
    "resign empty key": (
        v3election_pb2_grpc.ElectionStub,
        "Resign",
        epb.ResignRequest(leader=epb.LeaderKey(name=b"e")),
        (grpc.StatusCode.UNKNOWN, "etcdserver: key is not provided"),
    ),
    "unlock empty key": (
        v3lock_pb2_grpc.LockStub,
        "Unlock",
        lpb.UnlockRequest(),
        (grpc.StatusCode.UNKNOWN, "etcdserver: key is not provided"),
    ),
    "compact most negative": (
        rpc_pb2_grpc.KVStub,
        "Compact",
        pb.CompactionRequest(revision=-(2**63)),
        (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
    ),
    "compact largest": (
        rpc_pb2_grpc.KVStub,
        "Compact",
        pb.CompactionRequest(revision=2**63 - 1),
        (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"),
    ),
    "put most negative lease": (
        rpc_pb2_grpc.KVStub,
        "Put",
        pb.PutRequest(key=b"k", lease=-(2**63)),
        (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"),
    ),
    "revoke most negative lease": (
        rpc_pb2_grpc.LeaseStub,
        "LeaseRevoke",
        pb.LeaseRevokeRequest(ID=-(2**63)),
        (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"),
    ),
    "grant largest ttl": (
        rpc_pb2_grpc.LeaseStub,
        "LeaseGrant",
        pb.LeaseGrantRequest(TTL=2**63 - 1),
        (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    ),
}

# Values etcd 3.5.1 answers without an error: etcdx answers them the same way (checked against etcd 3.5.1).
ANSWERED = {
    "alarm activate none": (rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(action=Alarm.ACTIVATE, alarm=pb.NONE)),
    "alarm get -1": (rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(action=Alarm.GET, alarm=-1)),
    "alarm deactivate 7": (rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(action=Alarm.DEACTIVATE, alarm=7)),
    "range unknown order and target": (rpc_pb2_grpc.KVStub, "Range", RR(key=b"a", sort_order=5, sort_target=9)),
    "compare unknown result and target": (
        rpc_pb2_grpc.KVStub,
        "Txn",
        pb.TxnRequest(compare=[pb.Compare(key=b"a", result=9, target=-3)]),
    ),
    "grant negative id and ttl": (rpc_pb2_grpc.LeaseStub, "LeaseGrant", pb.LeaseGrantRequest(ID=-3, TTL=-(2**63))),
    "txn nested to the limit": (rpc_pb2_grpc.KVStub, "Txn", nested_txn(MAX_TXN_DEPTH)),
}


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    with etcdx_process(tmp_path_factory.mktemp("poison")).start() as server:
        yield server


def call(server, stub_class, method: str, request):
    with grpc.insecure_channel(server.endpoint) as channel:
        return getattr(stub_class(channel), method)(request, timeout=TIMEOUT)


def outcome(server, stub_class, method: str, request) -> tuple[grpc.StatusCode, str]:
    try:
        call(server, stub_class, method, request)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def health(server) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{server.client_url}/health", timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def status_errors(server) -> list[str]:
    return list(call(server, rpc_pb2_grpc.MaintenanceStub, "Status", pb.StatusRequest()).errors)


def everything(server) -> list[tuple[bytes, bytes, int]]:
    response = call(server, rpc_pb2_grpc.KVStub, "Range", RR(key=b"\0", range_end=b"\0"))
    return [(kv.key, kv.value, kv.mod_revision) for kv in response.kvs]


def assert_healthy(server) -> None:
    assert server.proc.poll() is None, server.log_tail()
    assert status_errors(server) == []
    assert health(server) == (200, {"health": "true", "reason": ""})
    listed = call(server, rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(action=Alarm.GET))
    assert list(listed.alarms) == []


@pytest.mark.parametrize("case", CASES)
def test_poison_request_gets_an_error_and_the_member_stays_up(member, case):
    stub_class, method, request, expected = CASES[case]
    assert outcome(member, stub_class, method, request) == expected
    assert_healthy(member)
    call(member, rpc_pb2_grpc.KVStub, "Put", pb.PutRequest(key=b"after " + case.encode(), value=b"ok"))


@pytest.mark.parametrize("case", ANSWERED)
def test_values_etcd_answers_are_answered(member, case):
    stub_class, method, request = ANSWERED[case]
    assert outcome(member, stub_class, method, request) == (grpc.StatusCode.OK, "")
    assert_healthy(member)


def test_watch_with_out_of_range_fields_is_answered(member):
    create = pb.WatchCreateRequest(key=b"w", start_revision=-(2**63), filters=[-1, 99], watch_id=-(2**63))
    with grpc.insecure_channel(member.endpoint) as channel:
        replies = rpc_pb2_grpc.WatchStub(channel).Watch(iter([pb.WatchRequest(create_request=create)]), timeout=2)
        first = next(replies)
        replies.cancel()
    assert first.created and first.watch_id == -(2**63)
    assert_healthy(member)


def test_after_kill_and_restart_the_member_is_clean_and_holds_every_key(member):
    """Runs after the cases above (pytest keeps file order): kill -9, restart, same state, same health."""
    before = everything(member)
    assert (b"after alarm activate -1", b"ok") in [(k, v) for k, v, _ in before]
    member.kill9()
    member.start()
    assert everything(member) == before
    assert_healthy(member)
    for case in ("alarm activate -1", "alarm activate 3"):
        stub_class, method, request, expected = CASES[case]
        assert outcome(member, stub_class, method, request) == expected
    member.restart()
    assert everything(member) == before
    assert_healthy(member)


# -- edge values etcd 3.5.1 answers: the same answers, in the same order on fresh members -----------------

Lock = v3lock_pb2_grpc.LockStub
Election = v3election_pb2_grpc.ElectionStub
KV = rpc_pb2_grpc.KVStub
Lease = rpc_pb2_grpc.LeaseStub
EDGE_VALUES = [
    (Lock, "Lock", lpb.LockRequest(name=b"l", lease=12345)),
    (Lock, "Lock", lpb.LockRequest(name=b"l", lease=-5)),
    (Election, "Campaign", epb.CampaignRequest(name=b"e", lease=12345, value=b"v")),
    (Election, "Leader", epb.LeaderRequest(name=b"nobody")),
    (Election, "Proclaim", epb.ProclaimRequest(leader=epb.LeaderKey(name=b"e", key=b"e/1", rev=5), value=b"v")),
    (Election, "Proclaim", epb.ProclaimRequest(leader=epb.LeaderKey(name=b"e"), value=b"v")),
    (Election, "Resign", epb.ResignRequest(leader=epb.LeaderKey(name=b"e", key=b"e/1", rev=5))),
    (Election, "Resign", epb.ResignRequest(leader=epb.LeaderKey(name=b"e"))),
    (Lock, "Unlock", lpb.UnlockRequest(key=b"nothing")),
    (Lock, "Unlock", lpb.UnlockRequest()),
    (Lease, "LeaseTimeToLive", pb.LeaseTimeToLiveRequest(ID=-1, keys=True)),
    (Lease, "LeaseRevoke", pb.LeaseRevokeRequest(ID=0)),
    (Lease, "LeaseGrant", pb.LeaseGrantRequest(TTL=9_000_000_001)),
    (Lease, "LeaseGrant", pb.LeaseGrantRequest(ID=-1, TTL=5)),
    (Lease, "LeaseGrant", pb.LeaseGrantRequest(ID=-1, TTL=5)),
    (KV, "Put", pb.PutRequest(key=b"k", lease=-1)),
    (Lease, "LeaseRevoke", pb.LeaseRevokeRequest(ID=-1)),
    (KV, "Range", RR(key=b"k", limit=-5, revision=-5, min_mod_revision=-3, max_create_revision=-1)),
    (KV, "Range", RR(key=b"k", sort_order=5, sort_target=9)),
    (KV, "Range", RR(key=b"k", revision=2**63 - 1)),
    (KV, "Txn", pb.TxnRequest(success=[pb.RequestOp()])),
    (KV, "Txn", pb.TxnRequest(compare=[pb.Compare(key=b"")])),
    (KV, "Txn", pb.TxnRequest(compare=[pb.Compare(key=b"k", result=9, target=-3)])),
    (KV, "Txn", pb.TxnRequest(success=[pb.RequestOp(request_range=RR(key=b"k", revision=2**62))])),
    (KV, "Txn", pb.TxnRequest(compare=[pb.Compare(key=b"k", target=pb.Compare.VALUE, version=3)])),
    (KV, "DeleteRange", pb.DeleteRangeRequest(key=b"z", range_end=b"a")),
    (KV, "Put", pb.PutRequest(key=b"absent", ignore_value=True, ignore_lease=True)),
    (KV, "Compact", pb.CompactionRequest(revision=-1)),
    (KV, "Compact", pb.CompactionRequest(revision=1)),
    (KV, "Compact", pb.CompactionRequest(revision=1)),
    (rpc_pb2_grpc.ClusterStub, "MemberList", pb.MemberListRequest(linearizable=True)),
    (rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(memberID=2**64 - 1, alarm=pb.CORRUPT)),
    (rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(action=Alarm.GET, alarm=-1)),
    (rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(action=Alarm.ACTIVATE, alarm=pb.NONE)),
    (rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(action=Alarm.DEACTIVATE, alarm=-1)),
    (health_pb2_grpc.HealthStub, "Check", health_pb2.HealthCheckRequest(service="x")),
    (Election, "Campaign", epb.CampaignRequest(name=b"", value=b"v")),
]


def test_edge_values_get_etcds_answers(tmp_path):
    """Every value etcd 3.5.1 answers (with a response or an error) gets the same code and text from etcdx."""
    outcomes = []
    for factory in (etcd_process, etcdx_process):
        with factory(tmp_path).start() as server:
            outcomes.append([outcome(server, *case) for case in EDGE_VALUES])
            assert server.proc.poll() is None
    etcd, etcdx = outcomes
    assert [(case[1], got) for case, got in zip(EDGE_VALUES, etcdx, strict=True)] == [
        (case[1], expected) for case, expected in zip(EDGE_VALUES, etcd, strict=True)
    ]


def raw_health(server, query: str = "") -> tuple[int, list, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.client_port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/health" + query)
        response = conn.getresponse()
        headers = sorted((k.lower(), v) for k, v in response.getheaders() if k.lower() != "date")
        return response.status, headers, response.read()
    finally:
        conn.close()


def test_health_with_an_alarm_is_etcds(tmp_path):
    """Status code, headers and body of /health, with and without ?exclude, for each alarm type alone."""
    queries = ["", "?exclude=NOSPACE", "?exclude=CORRUPT", "?exclude=NOSPACE&exclude=CORRUPT"]
    seen = []
    for factory in (etcd_process, etcdx_process):
        with factory(tmp_path).start() as server:
            answers = [raw_health(server, q) for q in queries]
            for kind in (pb.NOSPACE, pb.CORRUPT):
                for action in (Alarm.ACTIVATE, Alarm.DEACTIVATE):
                    call(server, rpc_pb2_grpc.MaintenanceStub, "Alarm", Alarm(action=action, memberID=5, alarm=kind))
                    if action == Alarm.ACTIVATE:
                        answers += [raw_health(server, q) for q in queries]
            seen.append(answers)
    assert seen[1] == seen[0]


def test_an_unknown_alarm_left_in_an_old_data_dir_is_reported_and_can_be_disarmed(tmp_path):
    """A data dir written before the checks may hold an alarm of type 3: the member starts, Status and
    /health report it as etcd would report such a type, and disarming it makes the member healthy."""
    with etcdx_process(tmp_path).start() as server:
        server.stop()
        backend = Backend(f"{server.data_dir}/member/kv", map_size=256 << 20)
        with backend.begin_write() as txn:
            rows.put_alarm(txn, 7, 3)
        backend.close()
        server.start()
        assert status_errors(server) == ["memberID:7 alarm:3 "]
        assert health(server) == (503, {"health": "false", "reason": "ALARM UNKNOWN"})
        assert raw_health(server, "?exclude=3")[0] == 200
        disarm = Alarm(action=Alarm.DEACTIVATE, memberID=7, alarm=3)
        assert [(a.memberID, a.alarm) for a in call(server, rpc_pb2_grpc.MaintenanceStub, "Alarm", disarm).alarms] == [
            (7, 3)
        ]
        assert_healthy(server)
        server.restart()
        assert_healthy(server)


# -- the same poison reaching the log directly ---------------------------------------------


def settings(data_dir: str) -> ServerSettings:
    return server_settings(data_dir, name="poison", backend_map_size=256 << 20)


POISON_ENTRIES = [
    InternalRequest(alarm=Alarm(action=Alarm.ACTIVATE, memberID=1, alarm=-1)),
    InternalRequest(alarm=Alarm(action=Alarm.ACTIVATE, memberID=1, alarm=3)),
    InternalRequest(alarm=Alarm(action=9, memberID=1, alarm=pb.NOSPACE)),
    InternalRequest(txn=pb.TxnRequest(success=[range_op(sort_order=RR.ASCEND, sort_target=9)])),  # key order
    InternalRequest(txn=nested_txn(50)),  # parses at the API edge, not as a log entry
]


async def run_member(data_dir: str, work) -> object:
    server = EtcdServer(settings(data_dir))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        result = await work(server)
        nursery.cancel_scope.cancel()
    return result


async def propose_poison(server: EtcdServer) -> tuple:
    answers = []
    for index, request in enumerate(POISON_ENTRIES):
        await server.propose(InternalRequest(put=pb.PutRequest(key=b"before %d" % index, value=b"v")))
        try:
            answers.append(await server.propose(request))
        except Exception as exc:  # the answer under test: an error, not a dead Ready loop
            answers.append(exc)
    return answers, await snapshot(server)


async def snapshot(server: EtcdServer) -> tuple:
    response = server.range(RR(key=b"\0", range_end=b"\0"))
    kvs = [(kv.key, kv.value, kv.mod_revision) for kv in response.kvs]
    return kvs, server.current_revision, server.alarms.list()


def apply_failures_logged(caplog) -> int:
    count = sum(record.getMessage() == "failed to apply request" for record in caplog.records)
    caplog.clear()
    return count


def test_poison_in_the_log_is_answered_and_replays_to_the_same_state(tmp_path, caplog):
    data_dir = str(tmp_path / "member")
    answers, state = trio.run(run_member, data_dir, propose_poison)
    assert apply_failures_logged(caplog) == 1  # the entry nobody checked: logged once, where it failed
    assert [(type(a).__name__, a.message) for a in answers[:3]] == [
        ("EtcdError", "etcdserver: unknown alarm type -1"),
        ("EtcdError", "etcdserver: unknown alarm type 3"),
        ("EtcdError", "etcdserver: unknown alarm action 9"),
    ]
    assert [kv.key for kv in answers[3].responses[0].response_range.kvs] == []
    assert isinstance(answers[4], ApplyFailed)
    assert state[2] == [] and len(state[0]) == len(POISON_ENTRIES)
    assert trio.run(run_member, data_dir, snapshot) == state  # restart: replays nothing new
    assert apply_failures_logged(caplog) == 0
    shutil.rmtree(settings(data_dir).backend_path)  # the next start replays the whole log, poison included
    assert trio.run(run_member, data_dir, snapshot) == state
    assert apply_failures_logged(caplog) == 1
