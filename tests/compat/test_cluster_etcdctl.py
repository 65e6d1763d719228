"""etcdctl 3.5.1 and 3.4 against a 3- and a 5-member etcdx cluster and a real etcd 3.5.1 cluster started with
the same flags on the same ports, one after the other: the printed outputs must be identical, ids included
(member and cluster ids derive from the peer URLs and the cluster token, so the same ports give the same ids).

Which member wins the first election is random, in etcd too: the etcd cluster runs with the plain flags and
elects whom it elects; the etcdx cluster is then steered to elect the same member, at the same term, by a
longer election timeout (5 s) on the others (etcdx does not fast-forward a new member's first election, so
the member with etcd's default 1 s campaigns first). The election timeout shows in no output.
Before each command every member has applied all that is committed (``settle``), as a user reading a quiet
cluster sees it.

Normalised, and only these: the DB size (table column and json dbSize/dbSizeInUse), because the backends
differ (bbolt pages vs LMDB pages: the same keys take another number of bytes); the `took = ...` of
`endpoint health` and its line order (it checks the endpoints concurrently, in etcd too); `snapshot save`'s
stderr (timestamped log lines). Everything else, raft term, index and applied index included, must match.

Both logs start alike (etcd's bootstrap entries: one ConfChange per member, the leader's empty entry, each
member's attributes, the cluster version), so raft indexes match from the start. Then a NOSPACE alarm is
raised (over gRPC) and alarm list, status and health compared; last, the leader is left alone (the others
stopped) and its Status, with "etcdserver: no leader", is compared too. On fresh 3-member clusters: member
add (learner)/list/promote/update/remove, and move-leader.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import (
    ETCDCTL,
    ETCDCTL_34,
    ServerProcess,
    cluster_ports,
    etcd_cluster,
    etcdx_cluster,
    start_cluster,
    stop_cluster,
)

CTLS = {"etcdctl-3.5.1": ETCDCTL, "etcdctl-3.4": ETCDCTL_34}
# case name -> etcdctl arguments, sent to m0's endpoint; cases named "... all ..." go to every member's
# endpoint instead (--endpoints with the list: no --cluster discovery)
CASES = {
    "member list table": ["member", "list", "-w", "table"],
    "member list json": ["member", "list", "-w", "json"],
    "endpoint status --cluster table": ["endpoint", "status", "--cluster", "-w", "table"],
    "endpoint status --cluster json": ["endpoint", "status", "--cluster", "-w", "json"],
    "endpoint status all table": ["endpoint", "status", "-w", "table"],
    "endpoint status all json": ["endpoint", "status", "-w", "json"],
    "endpoint health --cluster": ["endpoint", "health", "--cluster"],
    "endpoint health all": ["endpoint", "health"],
    "endpoint hashkv --cluster": ["endpoint", "hashkv", "--cluster"],
    "endpoint hashkv --cluster json": ["endpoint", "hashkv", "--cluster", "-w", "json"],
    "endpoint hashkv all json": ["endpoint", "hashkv", "-w", "json"],
    "alarm list": ["alarm", "list"],
    "alarm list json": ["alarm", "list", "-w", "json"],
    "snapshot save": ["snapshot", "save", "{snapshot}"],
}
# The writes both clusters see before the commands (through the leader and through a follower).
WORKLOAD = [
    (0, ["put", "k0", "v0"]),
    (1, ["put", "k1", "v1"]),
    (0, ["put", "k2", "v2"]),
    (0, ["put", "k0", "v0-again"]),
    (1, ["del", "k1"]),
    (0, ["compact", "3"]),
    (0, ["put", "k3", "v3"]),
]
FOLLOWER_ELECTION_TIMEOUT_MS = "5000"
SETTLE_TIMEOUT = 10.0


def status(member: ServerProcess) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=5)


def settle(members: list[ServerProcess]) -> list[rpc_pb2.StatusResponse]:
    """Waits until every member follows the same leader and has applied the same committed index."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            seen = [status(m) for m in members]
        except grpc.RpcError:
            seen = []
        points = {(s.leader, s.raftIndex, s.raftAppliedIndex) for s in seen}
        if seen and len(points) == 1 and seen[0].leader:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"members did not settle: {points}")
        time.sleep(0.05)


def etcdctl(binary: str, endpoint: str, args: list[str], cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, "--endpoints", endpoint, "--command-timeout", "10s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "ETCDCTL_API": "3"},
    )


def make_members(kind: str, tmp_path, size: int, ports: list[int], leader: int | None = None) -> list[ServerProcess]:
    """The cluster's members, not started; ``leader``: the member the others let campaign first (etcdx)."""
    members = (etcd_cluster if kind == "etcd" else etcdx_cluster)(tmp_path, size, ports=ports)
    if leader is not None:
        for n, member in enumerate(members):
            if n != leader:
                member.argv += ["--election-timeout", FOLLOWER_ELECTION_TIMEOUT_MS]
    return members


def leader_index(members: list[ServerProcess]) -> int:
    statuses = settle(members)
    return [s.header.member_id for s in statuses].index(statuses[0].leader)


def run_commands(kind: str, tmp_path, size: int, ports: list[int], leader: int | None = None) -> dict:
    """Starts the cluster (its first leader steered to member ``leader`` if given), runs the workload and every
    case with both etcdctl versions, stops the cluster. The outputs, and which member led, by case."""
    members = start_cluster(make_members(kind, tmp_path, size, ports, leader))
    try:
        outputs = {"leader": leader_index(members)}
        assert leader is None or outputs["leader"] == leader, f"{kind}: m{leader} was to lead"
        for n, args in WORKLOAD:
            done = etcdctl(ETCDCTL, members[n].endpoint, args, str(tmp_path))
            assert done.returncode == 0, f"{kind}: {args}: {done.stderr}"
        every = ",".join(m.endpoint for m in members)
        # The cases that discover the members (--cluster) run last, with each etcdctl in turn.
        order = [(ctl, case) for ctl in CTLS for case in CASES if "--cluster" not in CASES[case]]
        order += [(ctl, case) for ctl in CTLS for case in CASES if "--cluster" in CASES[case]]
        for ctl, case in order:
            snapshot = f"{ctl}.snap.db"
            args = [snapshot if a == "{snapshot}" else a for a in CASES[case]]
            settle(members)
            done = etcdctl(CTLS[ctl], every if "all" in case.split() else members[0].endpoint, args, str(tmp_path))
            outputs[(ctl, case)] = {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
            if case == "snapshot save":
                outputs[(ctl, case)]["file"] = str(tmp_path / snapshot)
        outputs.update(with_an_alarm(members, every, str(tmp_path)))
        outputs.update(status_without_quorum(members, members[outputs["leader"]], str(tmp_path)))
        return outputs
    finally:
        stop_cluster(members)


ALARMED = {
    "alarmed alarm list": ["alarm", "list"],
    "alarmed endpoint status all json": ["endpoint", "status", "-w", "json"],
    "alarmed endpoint status all table": ["endpoint", "status", "-w", "table"],
    "alarmed endpoint health all": ["endpoint", "health"],
}


def with_an_alarm(members: list[ServerProcess], every: str, cwd: str) -> dict:
    """A NOSPACE alarm for m1 (raised over gRPC: etcdctl cannot), then per etcdctl: alarm list, status and
    health of every member; then `alarm disarm`."""
    m1 = status(members[1]).header.member_id
    with grpc.insecure_channel(members[0].endpoint) as channel:
        activate = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=m1, alarm=rpc_pb2.NOSPACE)
        rpc_pb2_grpc.MaintenanceStub(channel).Alarm(activate, timeout=10)
    outputs = {}
    for ctl, binary in CTLS.items():
        for case, args in ALARMED.items():
            settle(members)
            done = etcdctl(binary, every, args, cwd)
            outputs[(ctl, case)] = {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    settle(members)
    done = etcdctl(ETCDCTL, every, ["alarm", "disarm"], cwd)
    outputs["alarm disarm"] = {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    return outputs


def status_without_quorum(members: list[ServerProcess], leader: ServerProcess, cwd: str) -> dict:
    """Stops every member but the leader, waits until it steps down (it has lost its quorum: check-quorum),
    then asks its status with each etcdctl (table and json)."""
    others = [m for m in members if m is not leader]
    stop_cluster(others)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while status(leader).leader:
        assert time.monotonic() < deadline, "the leader without a quorum did not step down"
        time.sleep(0.05)
    outputs = {}
    for ctl, binary in CTLS.items():
        for form in ("table", "json"):
            done = etcdctl(binary, leader.endpoint, ["endpoint", "status", "-w", form], cwd)
            outputs[(ctl, f"no quorum status {form}")] = {"rc": done.returncode, "stdout": done.stdout, "stderr": ""}
    return outputs


@pytest.fixture(scope="module", params=[3, 5], ids=["3-members", "5-members"])
def runs(request, tmp_path_factory) -> dict[str, dict]:
    size = request.param
    ports = cluster_ports(size)  # the same URLs for both clusters, run one after the other
    etcd = run_commands("etcd", tmp_path_factory.mktemp(f"etcd{size}"), size, ports)
    etcdx = run_commands("etcdx", tmp_path_factory.mktemp(f"etcdx{size}"), size, ports, leader=etcd["leader"])
    return {"etcd": etcd, "etcdx": etcdx, "size": size}


# -- normalisation -------------------------------------------------------------------------------------------


def _table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines() if "|" in line]


def _without_db_size(value):
    if isinstance(value, dict):
        return {k: "<db size>" if k in ("dbSize", "dbSizeInUse") else _without_db_size(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_db_size(v) for v in value]
    return value


def normalise(case: str, result: dict) -> dict:
    out, err = result["stdout"], result["stderr"]
    if case.endswith("table"):
        rows = _table_rows(out)
        if rows and "DB SIZE" in rows[0]:
            column = rows[0].index("DB SIZE")
            for row in rows[1:]:
                row[column] = "<db size>"
        out = rows
    elif case.endswith("json") and result["rc"] == 0:
        out = _without_db_size(json.loads(out))
    elif "endpoint health" in case:
        out = sorted(re.sub(r"took = \S+", "took = <t>", line) for line in (out + err).splitlines())
        err = ""
    if case == "snapshot save":
        err = ""  # timestamped log lines (3.5.1); the file itself is checked by test_snapshot_save_file
    return {"rc": result["rc"], "stdout": out, "stderr": err}


# -- the comparisons -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ctl", list(CTLS))
@pytest.mark.parametrize("case", list(CASES))
def test_output_identical_to_etcd(runs, case, ctl):
    etcd = normalise(case, runs["etcd"][(ctl, case)])
    etcdx = normalise(case, runs["etcdx"][(ctl, case)])
    assert etcd["rc"] == 0, etcd
    assert etcdx == etcd


@pytest.mark.parametrize("ctl", list(CTLS))
def test_an_alarm_shows_in_alarm_list_status_and_health_as_etcds(runs, ctl):
    """With a NOSPACE alarm raised for m1: alarm list, health and Status (errors on every member) as etcd's;
    `alarm disarm` as etcd's."""
    for case in ("alarmed alarm list", "alarmed endpoint health all"):
        assert normalise(case, runs["etcdx"][(ctl, case)]) == normalise(case, runs["etcd"][(ctl, case)]), case
    etcd = normalise("json", runs["etcd"][(ctl, "alarmed endpoint status all json")])["stdout"]
    etcdx = normalise("json", runs["etcdx"][(ctl, "alarmed endpoint status all json")])["stdout"]
    assert etcdx == etcd
    assert all(e["Status"]["errors"][0].endswith(" alarm:NOSPACE ") for e in etcdx)
    etcd_rows = normalise("table", runs["etcd"][(ctl, "alarmed endpoint status all table")])["stdout"]
    etcdx_rows = normalise("table", runs["etcdx"][(ctl, "alarmed endpoint status all table")])["stdout"]
    assert etcdx_rows == etcd_rows
    assert runs["etcdx"]["alarm disarm"] == runs["etcd"]["alarm disarm"]


@pytest.mark.parametrize("ctl", list(CTLS))
def test_a_leader_without_quorum_reports_no_leader_as_etcd(runs, ctl):
    """The leader alone (the others stopped) steps down; its Status then has leader 0 and "etcdserver: no
    leader" in errors, at the same term and raft index, in both."""
    etcd = normalise("json", runs["etcd"][(ctl, "no quorum status json")])["stdout"]
    etcdx = normalise("json", runs["etcdx"][(ctl, "no quorum status json")])["stdout"]
    assert etcdx == etcd
    assert [e["Status"].get("leader", 0) for e in etcdx] == [0]
    assert [e["Status"]["errors"] for e in etcdx] == [["etcdserver: no leader"]]
    etcd_rows = normalise("table", runs["etcd"][(ctl, "no quorum status table")])["stdout"]
    etcdx_rows = normalise("table", runs["etcdx"][(ctl, "no quorum status table")])["stdout"]
    assert etcdx_rows == etcd_rows
    assert etcdx_rows[1][etcdx_rows[0].index("ERRORS")] == "etcdserver: no leader"


@pytest.mark.parametrize("ctl", list(CTLS))
def test_hashkv_is_the_same_on_every_member_and_equals_etcds(runs, ctl):
    """HashKV is defined over the key/value revisions, not the storage engine: after the same writes and
    compaction, every etcdx member's hash is etcd's."""
    for kind in ("etcd", "etcdx"):
        hashes = json.loads(runs[kind][(ctl, "endpoint hashkv all json")]["stdout"])
        assert len({h["HashKV"]["hash"] for h in hashes}) == 1, (kind, hashes)
        assert [h["HashKV"]["compact_revision"] for h in hashes] == [3] * runs["size"]
    etcd = json.loads(runs["etcd"][(ctl, "endpoint hashkv all json")]["stdout"])
    etcdx = json.loads(runs["etcdx"][(ctl, "endpoint hashkv all json")]["stdout"])
    assert etcdx == etcd


@pytest.mark.parametrize("ctl", list(CTLS))
def test_snapshot_save_file_is_accepted_by_etcdx_snapshot_status(runs, ctl):
    """`etcdctl snapshot save` succeeded on both (its stdout is compared above); `etcdx snapshot status` reads
    both files (etcdx's image, etcd's bbolt file) and finds the same revision."""
    checks = {
        kind: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "etcdx",
                "snapshot",
                "status",
                runs[kind][(ctl, "snapshot save")]["file"],
                "-w",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for kind in ("etcd", "etcdx")
    }
    statuses = {}
    for kind, check in checks.items():
        out, err = check.communicate(timeout=60)
        assert check.returncode == 0, err
        statuses[kind] = json.loads(out)
    assert statuses["etcdx"]["revision"] == statuses["etcd"]["revision"]


# -- member changes and move-leader ---------------------------------------------------------------------------

RECONFIG_HEALTH_INTERVAL = 5.5


def _member_id_hex(line: str) -> str:
    return line.split()[1] if line.startswith("Member ") else ""


def without_client_logs(text: str) -> str:
    """etcdctl's output without its own retry log lines (timestamps, client pointers)."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith('{"level"'))


def normalise_member_output(text: str, added: str) -> list:
    """What a member command printed, with what etcd derives from the clock taken out: the added member's id
    (etcd's NewMember mixes in the time of the add) and what follows from it, the place of that member in
    id-sorted lists and the width of the ID column. etcdctl's retry log lines are dropped; its "Error: ..."
    line stays."""
    lines = without_client_logs(text).splitlines()
    if added:
        lines = [line.replace(added, "<added>").replace(str(int(added, 16)), '"<added>"') for line in lines]
    out: list = []
    for line in lines:
        line = re.sub(r"Member +<added>", "Member <added>", line)
        if line.startswith("ETCD_INITIAL_CLUSTER="):
            line = "ETCD_INITIAL_CLUSTER=" + ",".join(sorted(line.split("=", 1)[1].strip('"').split(",")))
        if line.startswith('{"header"'):
            listed = json.loads(line)
            listed["members"].sort(key=lambda m: m["peerURLs"])
            out.append(listed)
        elif line.startswith("|"):
            out.append([cell.strip() for cell in line.strip("|").split("|")])
        elif not line.startswith("+-"):
            out.append(line)
    return [out[0], *sorted(out[1:], key=str)] if out and isinstance(out[0], list) else out


def run_member_changes(kind: str, tmp_path, ports: list[int], ctl: str, leader: int | None = None) -> dict:
    """On a 3-member cluster: add a learner (peer URL on a spare port), list, promote it (refused: it has not
    started), update a member's peer URLs (to the same ones), remove the learner, list, remove it again."""
    tmp_path.mkdir()
    members = start_cluster(make_members(kind, tmp_path, 3, ports[:6], leader))
    spare = f"http://127.0.0.1:{ports[6]}"
    binary, added = CTLS[ctl], ""
    try:
        outputs = {"leader": leader_index(members), "steps": []}
        # etcd's --strict-reconfig-check refuses a change ("unhealthy cluster") until every member has been
        # connected for its health interval (5 s)
        time.sleep(RECONFIG_HEALTH_INTERVAL)
        ep = members[0].endpoint
        m2 = f"{status(members[2]).header.member_id:x}"
        m2_peer = f"http://127.0.0.1:{members[2].peer_port}"
        steps = [
            ["member", "add", "m3", f"--peer-urls={spare}", "--learner"],
            ["member", "list", "-w", "table"],
            ["member", "promote", "{added}"],
            ["member", "update", m2, f"--peer-urls={m2_peer}"],
            ["member", "remove", "{added}"],
            ["member", "list", "-w", "json"],
            ["member", "remove", "{added}"],
        ]
        for step in steps:
            args = [added if a == "{added}" else a for a in step]
            done = etcdctl(binary, ep, args, str(tmp_path))
            text = done.stdout + done.stderr
            if step[1] == "add":
                added = next((_member_id_hex(line) for line in text.splitlines() if _member_id_hex(line)), "")
            outputs["steps"].append({"rc": done.returncode, "out": normalise_member_output(text, added)})
            settle(members)
        return outputs
    finally:
        stop_cluster(members)


@pytest.mark.parametrize("ctl", list(CTLS))
def test_member_changes_identical_to_etcd(tmp_path, ctl):
    ports = cluster_ports(4)[:7]
    etcd = run_member_changes("etcd", tmp_path / "etcd", ports, ctl)
    etcdx = run_member_changes("etcdx", tmp_path / "etcdx", ports, ctl, leader=etcd["leader"])
    assert etcdx == etcd


def run_move_leader(kind: str, tmp_path, ports: list[int], ctl: str, leader: int | None = None) -> dict:
    """move-leader to a follower (all endpoints given: etcdctl finds the leader), endpoint status, the same
    move again (the target leads now), a move with only a follower's endpoint given, a move to an unknown id."""
    tmp_path.mkdir()
    members = start_cluster(make_members(kind, tmp_path, 3, ports, leader))
    try:
        outputs = {"leader": leader_index(members), "steps": []}
        first = outputs["leader"]
        target, other = members[(first + 1) % 3], members[(first + 2) % 3]
        target_id = f"{status(target).header.member_id:x}"
        every = ",".join(m.endpoint for m in members)
        for endpoint, args in [
            (every, ["move-leader", target_id]),
            (every, ["endpoint", "status", "-w", "json"]),
            (every, ["move-leader", target_id]),
            (other.endpoint, ["move-leader", target_id]),
            (every, ["move-leader", "ffff"]),
        ]:
            done = etcdctl(CTLS[ctl], endpoint, args, str(tmp_path))
            out = without_client_logs(done.stdout + done.stderr)
            if args[0] == "endpoint":
                out = json.dumps(_without_db_size(json.loads(done.stdout)))
            outputs["steps"].append({"rc": done.returncode, "out": out})
            settle(members)
        return outputs
    finally:
        stop_cluster(members)


@pytest.mark.parametrize("ctl", list(CTLS))
def test_move_leader_identical_to_etcd(tmp_path, ctl):
    ports = cluster_ports(3)
    etcd = run_move_leader("etcd", tmp_path / "etcd", ports, ctl)
    etcdx = run_move_leader("etcdx", tmp_path / "etcdx", ports, ctl, leader=etcd["leader"])
    assert etcdx == etcd
