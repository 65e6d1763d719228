"""Membership changes on a 3-member etcdx cluster, driven with etcdctl 3.5.1 as an operator would: add a learner,
start it with the flags `member add` prints (--initial-cluster-state existing), promote it, update its peer
URLs, remove it (it stops with etcd's message); etcd's errors for bad changes; and the same commands against a
real etcd 3.5.1 cluster, whose output must match once ids and ports are normalised (etcd derives an added
member's id from the time, so ids are replaced by the member's name)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import ETCD, ETCDCTL, ETCDCTL_34, ServerProcess, etcdx_cluster, free_ports


def ctl(members, *args: str, etcdctl: str = ETCDCTL) -> subprocess.CompletedProcess:
    endpoints = ",".join(m.endpoint for m in members)
    return subprocess.run(
        [etcdctl, "--endpoints", endpoints, "--command-timeout=15s", *args], capture_output=True, text=True, timeout=60
    )


def start_cluster(tmp_path, command: list[str] | None) -> list[ServerProcess]:
    members = etcdx_cluster(tmp_path, 3)
    if command is not None:  # the same flags, run by real etcd
        for m in members:
            m.argv = [*command, *m.argv[3:]]
    for m in members:
        m.launch()
    try:
        for m in members:
            m.wait_ready()
    except Exception:
        for m in members:
            m.stop()
        raise
    return members


def joiner(tmp_path, command: list[str], add_output: str, client_port: int, peer_port: int) -> ServerProcess:
    """The member `etcdctl member add` announced, started with the ETCD_* variables it printed."""
    env = {k: v.strip('"') for k, v in re.findall(r"^(ETCD_\w+)=(.*)$", add_output, re.M)}
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    data_dir = str(tmp_path / "m3.data")
    argv = [*command, "--data-dir", data_dir, "--listen-client-urls", client, "--advertise-client-urls", client]
    argv += ["--listen-peer-urls", peer]
    return ServerProcess(argv, data_dir, client_port, peer_port, str(tmp_path / "m3.log"), env=env)


def sort_commas(text: str) -> str:
    return ",".join(sorted(text.split(",")))


def added_id(add_output: str) -> str:
    return re.match(r"Member +(\w+) added", add_output).group(1)


def operate(tmp_path, command: list[str] | None) -> list[str]:
    """Runs the runbook on a fresh cluster; returns what etcdctl printed at each step, normalised."""
    run = [sys.executable, "-m", "etcdx"] if command is None else command
    members = start_cluster(tmp_path, command)
    new = None
    outputs = []
    try:
        names = {}
        for line in ctl(members, "member", "list").stdout.splitlines():
            names[line.split(",")[0]] = line.split(", ")[2]
        ports = {str(p): f"<{n}>" for n, m in enumerate(members) for p in (m.client_port, m.peer_port)}
        client_port, peer_port = free_ports(2)
        ports.update({str(client_port): "<new-client>", str(peer_port): "<new-peer>"})

        def step(*args: str, etcdctl: str = ETCDCTL) -> subprocess.CompletedProcess:
            result = ctl(members, *args, etcdctl=etcdctl)
            text = f"$ {os.path.basename(os.path.dirname(etcdctl))} {' '.join(args)} -> {result.returncode}\n"
            text += result.stdout
            text += "".join(line for line in result.stderr.splitlines(True) if "Error" in line)
            for member_id, name in names.items():
                text = text.replace(member_id, f"<id:{name}>")
            text = re.sub(r"cluster +[0-9a-f]+", "cluster <cluster>", text)  # %16x: padded
            text = re.sub(r"Member +", "Member ", text)  # a random id of 15 hex digits is padded too
            text = re.sub(r"-+", "-", re.sub(r" +", " ", text))  # table widths follow the ids' lengths
            text = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: "127.0.0.1:" + ports.get(m.group(1), "?"), text)
            # etcdctl prints ETCD_INITIAL_CLUSTER in the order of a Go map: sort its entries
            text = re.sub(r'(ETCD_INITIAL_CLUSTER=")([^"]*)', lambda m: m.group(1) + sort_commas(m.group(2)), text)
            if args[:2] == ("member", "list"):  # by id, and ids differ between the runs: by name instead
                head, *lines = text.splitlines(True)
                text = head + "".join(sorted(lines))
            outputs.append(text)
            return result

        new_peer = f"--peer-urls=http://127.0.0.1:{peer_port}"
        step("member", "add", "bad", "--peer-urls=foo")
        wait_healthy(members)
        step("member", "add", "m4", "--learner", f"--peer-urls=http://127.0.0.1:{members[0].peer_port}")
        add = step("member", "add", "m3", "--learner", new_peer)
        assert add.returncode == 0, add.stderr
        names[added_id(add.stdout)] = "m3"
        outputs[-1] = outputs[-1].replace(added_id(add.stdout), "<id:m3>")
        step("member", "list")  # the learner is unstarted: no name, no client URLs
        step("member", "list", etcdctl=ETCDCTL_34)
        step("member", "add", "m4", "--learner", "--peer-urls=http://127.0.0.1:1")  # a second learner
        # its peer URL is taken (another URL with it: the same URLs in the same second would give m3's id)
        step("member", "add", "m5", f"{new_peer},http://127.0.0.1:2")
        new = joiner(tmp_path, run, add.stdout, client_port, peer_port).launch()  # a learner serves no Range
        new_id = added_id(add.stdout)
        step("member", "promote", names_by(names, "m0"))  # a voter
        deadline = time.monotonic() + 20
        while ctl(members, "member", "promote", new_id).returncode != 0:  # once it is in sync with the leader
            assert time.monotonic() < deadline, "the learner was never promoted"
            time.sleep(0.5)
        step("member", "list")
        step("member", "list", "-w", "table", etcdctl=ETCDCTL_34)
        assert ctl([new], "put", "via-new", "1").returncode == 0
        step("get", "via-new")
        new.restart()  # keeps the identity it took when it joined (the flags would give another id)
        assert ctl([new], "get", "via-new", "--print-value-only").stdout == "1\n"
        step("member", "update", new_id, new_peer)
        step("member", "remove", new_id)
        assert new.proc.wait(timeout=20) is not None
        step("member", "list")
        step("member", "remove", new_id)  # removed already
        step("member", "update", "1234", new_peer)
        step("member", "promote", "1234")
        return outputs, new
    finally:
        for m in [*members, *([new] if new else [])]:
            m.stop()


def names_by(names: dict[str, str], name: str) -> str:
    return next(i for i, n in names.items() if n == name)


@pytest.fixture(scope="module")
def etcdx_run(tmp_path_factory):
    return operate(tmp_path_factory.mktemp("etcdx"), None)


def test_learner_joins_is_promoted_updated_and_removed(etcdx_run):
    outputs, new = etcdx_run
    text = "\n".join(outputs)
    assert "<id:m3>, unstarted, , http://127.0.0.1:<new-peer>, , true" in text
    assert "<id:m3>, started, m3, http://127.0.0.1:<new-peer>, http://127.0.0.1:<new-client>, false" in text
    assert "Member <id:m3> removed from cluster <cluster>" in text
    assert "via-new\n1" in text
    assert "the member has been permanently removed from the cluster" in new.log_tail(20)


def test_etcds_errors_for_bad_changes(etcdx_run):
    text = "\n".join(etcdx_run[0])
    for error in (
        "etcdserver: too many learner members in cluster",
        "etcdserver: Peer URLs already exists",
        "etcdserver: can only promote a learner member",
        "etcdserver: member not found",
    ):
        assert f"Error: {error}" in text


def test_etcdctl_output_matches_etcd(etcdx_run, tmp_path):
    etcd_outputs, etcd_new = operate(tmp_path, [ETCD])
    assert etcdx_run[0] == etcd_outputs
    assert etcdx_run[1].proc.returncode == etcd_new.proc.returncode


def test_removing_the_leader_leaves_a_working_cluster(tmp_path):
    members = start_cluster(tmp_path, None)
    try:
        wait_healthy(members)
        statuses = {}
        for m in members:
            with grpc.insecure_channel(m.endpoint) as channel:
                statuses[m.client_port] = rpc_pb2_grpc.MaintenanceStub(channel).Status(
                    rpc_pb2.StatusRequest(), timeout=5
                )
        (old,) = [m for m in members if statuses[m.client_port].header.member_id == statuses[m.client_port].leader]
        removed = ctl(members, "member", "remove", f"{statuses[old.client_port].leader:x}")
        assert removed.returncode == 0, removed.stderr
        assert old.proc.wait(timeout=20) == 0  # it stepped down, then stopped as etcd does
        rest = [m for m in members if m is not old]
        deadline = time.monotonic() + 20
        while leader_of(rest) in (0, statuses[old.client_port].leader):  # the two left elect a leader
            assert time.monotonic() < deadline, "no new leader"
            time.sleep(0.2)
        assert ctl(rest, "put", "after", "1").returncode == 0
        assert len(ctl(rest, "member", "list").stdout.splitlines()) == 2
        assert "removed member" in rest[0].log_tail(60)
    finally:
        for m in members:
            m.stop()


def wait_healthy(members) -> None:
    """Until the members were connected long enough for --strict-reconfig-check (5 s)."""
    taken = f"--peer-urls=http://127.0.0.1:{members[0].peer_port}"
    deadline = time.monotonic() + 20
    for m in members:  # each member judges by its own connections
        while "unhealthy cluster" in ctl([m], "member", "add", "probe", "--learner", taken).stderr:
            assert time.monotonic() < deadline, "the cluster never became healthy"
            time.sleep(0.5)


def leader_of(members) -> int:
    """The leader every member in ``members`` reports (0 while they do not agree or have none)."""
    leaders = set()
    for m in members:
        with grpc.insecure_channel(m.endpoint) as channel:
            try:
                status = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=2)
            except grpc.RpcError:
                return 0
            leaders.add(status.leader)
    return leaders.pop() if len(leaders) == 1 else 0
