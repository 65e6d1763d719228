"""The seed's etcdctl v2 commands (etcdctl 3.4, ETCDCTL_API=2) give the same output against etcdx as against
etcd 3.4.23, both with --enable-v2. Normalised: member IDs and ports in the member commands' output (each
member has its own; an added member's ID hashes the time), and the order of members (by ID, so random).
`member remove` of the only member is refused by both (etcd's strict reconfig check); `member add` is last,
since a lone member that adds a second voter waits for it and serves no more writes (etcd does the same).
The seed's `member remove <id>` of another member, and `member add`, on a cluster of three (the same ports,
so the same IDs, for both): identical output, the added member's ID and which member leads normalised.
`backup`: etcdctl backup on etcd's data dir and `etcdx backup` on etcdx's both exit 0, and each copy starts
as a one-member cluster with a new member ID holding the data (etcd's copy needs --force-new-cluster)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support.procs import (
    ETCD_34,
    ETCDCTL_34,
    ServerProcess,
    _member_processes,
    cluster_ports,
    etcd34_process,
    etcdx_process,
    free_ports,
    start_cluster,
    stop_cluster,
)

pytestmark = pytest.mark.skipif(
    (shutil.which(ETCD_34) is None or shutil.which(ETCDCTL_34) is None) and not os.environ.get("CI"),
    reason="etcd 3.4.23 / etcdctl 3.4 (Debian etcd-server, etcd-client) missing",
)

# In the seed's order; each line is one etcdctl invocation.
COMMANDS = [
    ["set", "/testdir/testkey", "Hello world"],
    ["get", "/testdir/testkey"],
    ["get", "/testdir/testkey2"],
    ["update", "/testdir/testkey", "Hello"],
    ["update", "/testdir/testkey2", "Hello"],
    ["rm", "/testdir/testkey"],
    ["rm", "/testdir/testkey"],
    ["mk", "/testdir/testkey", "Hello world"],
    ["mk", "/testdir/testkey", "Hello world"],
    ["mkdir", "testdir2"],
    ["mkdir", "testdir2"],
    ["setdir", "testdir3"],
    ["updatedir", "testdir2"],
    ["setdir", "dir1"],
    ["rmdir", "dir1"],
    ["set", "/dir/testkey", "hi"],
    ["rmdir", "/dir"],
    ["ls", "--sort"],
    ["ls", "dir"],
    ["ls", "--sort", "--recursive", "-p"],
    ["set", "--ttl", "100", "/ttl/key", "v"],
    ["set", "--swap-with-value", "hi", "/dir/testkey", "hi2"],
    ["set", "--swap-with-value", "nope", "/dir/testkey", "hi3"],
    ["set", "--swap-with-index", "1", "/dir/testkey", "hi3"],
    ["mk", "--in-order", "/queue", "job"],
    ["ls", "/queue"],
    ["rm", "--with-value", "nope", "/dir/testkey"],
    ["rm", "--with-index", "18", "/dir/testkey"],
    ["rm", "--recursive", "/testdir"],
    ["rm", "--dir", "testdir3"],
    ["mkdir", "--ttl", "100", "ttldir"],
    ["updatedir", "--ttl", "200", "ttldir"],
    ["get", "--sort", "/ttl/key"],
    ["-o", "extended", "get", "/dir/testkey"],
    ["-o", "json", "get", "/dir/testkey"],
    ["watch", "--after-index", "4", "/testdir/testkey"],
    ["member", "list"],
    ["member", "remove", "1234abcd"],
    ["member", "remove", "<own id>"],
]
MEMBER_ADD = ["member", "add", "etcd3", "http://127.0.0.1:<spare>"]

# A watcher, and the key whose set wakes it. etcdctl 3.4's exec-watch takes its LAST argument as the key when
# the command follows "--" (the seed's form): it then watches "ls" and fails to run "testdir/testkey"; the form
# with the key last is the one that runs the command.
WATCHES = [
    (["watch", "testdir/testkey"], "testdir/testkey"),
    (["exec-watch", "testdir/testkey", "--", "sh", "-c", "ls"], "ls"),
    (
        ["exec-watch", "sh", "-c", 'echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"', "testdir/testkey"],
        "testdir/testkey",
    ),
]


def etcdctl(endpoint: str, *args: str, timeout: float = 15) -> tuple[int, str, str]:
    env = {**os.environ, "ETCDCTL_API": "2"}
    done = subprocess.run(
        [ETCDCTL_34, "--endpoints", endpoint, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    return done.returncode, done.stdout, done.stderr


def own_id(server) -> str:
    listed = json.loads(urllib.request.urlopen(f"{server.client_url}/v2/members", timeout=10).read())
    return listed["members"][0]["id"]


def normalise(text: str, server, ids: dict[str, str], spare: int) -> str:
    """IDs and ports as names; the members of `member list` and of ETCD_INITIAL_CLUSTER sorted."""
    for member_id, name in ids.items():
        text = text.replace(member_id, name)
    text = text.replace(f":{server.client_port}", ":<client>").replace(f":{server.peer_port}", ":<peer>")
    text = text.replace(f":{spare}", ":<spare>")
    lines = text.split("\n")
    lines = [
        'ETCD_INITIAL_CLUSTER="' + ",".join(sorted(line.split("=", 1)[1].strip('"').split(","))) + '"'
        if line.startswith("ETCD_INITIAL_CLUSTER=")
        else line
        for line in lines
    ]
    if all(line.startswith("<") for line in lines if line):  # `member list`: one line per member, by ID
        lines = sorted(line for line in lines if line) + [""]
    return "\n".join(lines)


def session(server) -> list[tuple[int, str, str]]:
    """Runs the commands, then a watch and an exec-watch that a set wakes, then `member add` and `member list`."""
    endpoint = server.client_url
    ids = {own_id(server): "<id>"}
    spare = free_ports(1)[0]
    out = []
    for command in COMMANDS:
        command = [part.replace("<own id>", next(iter(ids))) for part in command]
        code, stdout, stderr = etcdctl(endpoint, *command)
        if command[0] == "member":
            stdout, stderr = normalise(stdout, server, ids, spare), normalise(stderr, server, ids, spare)
        out.append((code, stdout, stderr))
    env = {**os.environ, "ETCDCTL_API": "2"}
    for watcher_args, key in WATCHES:
        watcher = subprocess.Popen(
            [ETCDCTL_34, "--endpoints", endpoint, *watcher_args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            time.sleep(1.0)  # the watch is registered once etcdctl has synced the cluster and sent it
            out.append(etcdctl(endpoint, "set", key, f"Hello {watcher_args[0]}"))
            out.append((0, watcher.stdout.readline(), ""))
        finally:
            watcher.kill()
            watcher.wait(timeout=10)
            watcher.stdout.close()
    add = [part.replace("<spare>", str(spare)) for part in MEMBER_ADD]
    code, stdout, stderr = etcdctl(endpoint, *add)
    added = re.search(r"with ID ([0-9a-f]+)", stdout)
    if added:
        ids[added.group(1)] = "<added>"
    out.append((code, normalise(stdout, server, ids, spare), normalise(stderr, server, ids, spare)))
    code, stdout, stderr = etcdctl(endpoint, "member", "list")
    out.append((code, normalise(stdout, server, ids, spare), normalise(stderr, server, ids, spare)))
    return out


def test_seed_etcdctl_v2_commands_match_etcd_34(tmp_path):
    with etcd34_process(tmp_path, extra_args=("--enable-v2",)).start() as etcd:
        expected = session(etcd)
    with etcdx_process(tmp_path, extra_args=("--enable-v2",)).start() as etcdx:
        got = session(etcdx)
    labels = [*COMMANDS, *(label for args, _ in WATCHES for label in (["set"], args)), MEMBER_ADD, ["member", "list"]]
    for command, want, have in zip(labels, expected, got, strict=True):
        assert have == want, command
    assert expected[-3] == (0, "set /testdir/testkey Hello exec-watch\n", "")
    assert expected[-2][0] == 0 and expected[-2][1].startswith("Added member named etcd3 with ID <added> to cluster")
    assert "<added>[unstarted]: peerURLs=http://127.0.0.1:<spare>" in expected[-1][1]
    assert expected[1] == (0, "Hello world\n", "")
    assert expected[2][0] == 4 and "Key not found" in expected[2][2]


# /v2/members changes with JSON bodies, in order; "<peer>" is the member's own peer URL, "<id>" its ID, "<spare>"
# a free port. The add is last: then the lone member waits for the new one.
MEMBER_REQUESTS = [
    ("POST", "/v2/members", "application/json", "notjson"),
    ("POST", "/v2/members", "application/json", ""),
    ("POST", "/v2/members", "application/json", "[]"),
    ("POST", "/v2/members", "application/json", '{"peerURLs":[1]}'),
    ("POST", "/v2/members", "application/json", '{"peerURLs":"x"}'),
    ("POST", "/v2/members", "application/json", '{"peerURLs":null}'),
    ("POST", "/v2/members", "application/json", '{"PEERURLS":["bad"]}'),
    ("POST", "/v2/members", "application/json", '{"peerURLs":["http://127.0.0.1"]}'),
    ("POST", "/v2/members", "application/json", '{"peerURLs":["http://127.0.0.1:1/p"]}'),
    ("POST", "/v2/members", "application/json", '{"peerURLs":["http://a:1"]} x'),
    ("POST", "/v2/members", "application/json", '{"peerURLs":["<peer>"]}'),
    ("POST", "/v2/members", "text/plain", '{"peerURLs":["http://127.0.0.1:<spare>"]}'),
    ("PUT", "/v2/members", "application/json", '{"peerURLs":["http://127.0.0.1:<spare>"]}'),
    ("DELETE", "/v2/members/", None, None),
    ("DELETE", "/v2/members/zz", None, None),
    ("DELETE", "/v2/members/00001234", None, None),
    ("DELETE", "/v2/members/0x1234", None, None),
    ("DELETE", "/v2/members/12/34", None, None),
    ("DELETE", "/v2/members/10000000000000000", None, None),
    ("PUT", "/v2/members/1234", "application/json", '{"peerURLs":["http://127.0.0.1:<spare>"]}'),
    ("PUT", "/v2/members/<id>", "text/plain", "{}"),
    ("PUT", "/v2/members/<id>", "application/json", '{"peerURLs":["<peer>"]}'),
    ("DELETE", "/v2/members/<id>", None, None),
    ("POST", "/v2/members/any", "application/json", '{"peerURLs":["http://127.0.0.1:<spare>"]}'),
]


def member_answers(server) -> list:
    member_id, spare = own_id(server), str(free_ports(1)[0])
    peer = f"http://127.0.0.1:{server.peer_port}"
    out = []
    for method, path, content_type, body in MEMBER_REQUESTS:
        path = path.replace("<id>", member_id)
        data = None if body is None else body.replace("<peer>", peer).replace("<spare>", spare).encode()
        request = urllib.request.Request(server.client_url + path, data=data, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, answer = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, headers, answer = exc.code, exc.headers, exc.read()
        text = answer.decode().replace(spare, "<spare>").replace(str(server.peer_port), "<peer>")
        text = re.sub(r'"id":"[0-9a-f]+"', '"id":"<added>"', text)
        out.append((method, path.replace(member_id, "<id>"), status, headers.get("content-type"), text))
    return out


def test_v2_members_changes_match_etcd_34(tmp_path):
    with etcd34_process(tmp_path, extra_args=("--enable-v2",)).start() as etcd:
        expected = member_answers(etcd)
    with etcdx_process(tmp_path, extra_args=("--enable-v2",)).start() as etcdx:
        got = member_answers(etcdx)
    for want, have in zip(expected, got, strict=True):
        assert have == want
    assert expected[-1][2:] == (
        201,
        "application/json",
        '{"id":"<added>","name":"","peerURLs":["http://127.0.0.1:<spare>"],"clientURLs":[]}\n',
    )


def copy_process(tmp_path, binary: list[str], data_dir: str, *extra: str) -> ServerProcess:
    """A member on a backup's data dir, on new ports."""
    client_port, peer_port = free_ports(2)
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    argv = [*binary, "--data-dir", data_dir, "--listen-client-urls", client, "--advertise-client-urls", client]
    argv += ["--listen-peer-urls", peer, "--enable-v2", *extra]
    return ServerProcess(argv, data_dir, client_port, peer_port, str(tmp_path / f"copy-{client_port}.log"))


def v3ctl(endpoint: str, *args: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [ETCDCTL_34, "--endpoints", endpoint, *args],
        env={**os.environ, "ETCDCTL_API": "3"},
        capture_output=True,
        text=True,
        timeout=15,
    )
    return done.returncode, done.stdout, done.stderr


def read_copy(copy: ServerProcess) -> tuple[tuple, tuple, list[str]]:
    """The v2 key, the v3 key, and the member IDs a started copy holds."""
    members = v3ctl(copy.client_url, "member", "list")[1].splitlines()
    return etcdctl(copy.client_url, "get", "/seed/v2"), v3ctl(copy.client_url, "get", "seed-v3"), members


def write_keys(server) -> str:
    assert etcdctl(server.client_url, "set", "/seed/v2", "kept in v2")[0] == 0
    assert v3ctl(server.client_url, "put", "seed-v3", "kept in v3")[0] == 0
    return own_id(server)


def test_backup_copies_start_as_one_member_with_the_data(tmp_path):
    """etcdctl backup (the seed's form, and --with-v3: etcdctl 3.4 copies the v3 keys only with it; it needs
    etcd stopped, as it waits for the backend's lock) vs `etcdx backup` of a running member (v3 by default)."""
    etcd = etcd34_process(tmp_path, extra_args=("--enable-v2",)).start()
    with etcd:
        etcd_id = write_keys(etcd)
    backups = {form: str(tmp_path / f"etcd-backup{form}") for form in ("", "-v3")}
    codes = [
        etcdctl("", "backup", "--data-dir", etcd.data_dir, "--backup-dir", backups[""])[0],
        etcdctl("", "backup", "--data-dir", etcd.data_dir, "--backup-dir", backups["-v3"], "--with-v3")[0],
    ]
    with copy_process(tmp_path, [ETCD_34], backups[""], "--force-new-cluster").start() as copy:
        v2_only = read_copy(copy)
    with copy_process(tmp_path, [ETCD_34], backups["-v3"], "--force-new-cluster").start() as copy:
        expected = read_copy(copy)
    assert codes == [0, 0]
    assert v2_only[:2] == ((0, "kept in v2\n", ""), (0, "", ""))
    assert expected[:2] == ((0, "kept in v2\n", ""), (0, "seed-v3\nkept in v3\n", ""))
    assert len(expected[2]) == 1 and etcd_id not in expected[2][0]

    with etcdx_process(tmp_path, extra_args=("--enable-v2",)).start() as etcdx:
        etcdx_id = write_keys(etcdx)
        # The backup reads what the member committed to its backend, which it does every --backend-batch-interval
        # (100 ms; later on a loaded machine) and before it streams a snapshot: make it commit now.
        assert v3ctl(etcdx.client_url, "snapshot", "save", str(tmp_path / "commit.db"))[0] == 0
        online = etcdx_backup(etcdx.data_dir, str(tmp_path / "etcdx-backup"))
    assert online.returncode == 0, online.stderr
    offline = etcdx_backup(etcdx.data_dir, str(tmp_path / "etcdx-backup-stopped"))  # the member stopped cleanly
    assert offline.returncode == 0, offline.stderr
    for backup in ("etcdx-backup", "etcdx-backup-stopped"):
        with copy_process(tmp_path, [sys.executable, "-m", "etcdx"], str(tmp_path / backup)).start() as copy:
            got = read_copy(copy)
        assert got[:2] == expected[:2]
        assert len(got[2]) == 1 and etcdx_id not in got[2][0]
    refused = etcdx_backup(etcdx.data_dir, str(tmp_path / "etcdx-backup"))
    assert refused.returncode == 1 and "is not empty" in refused.stderr
    missing = etcdx_backup(str(tmp_path / "nothing-here"), str(tmp_path / "etcdx-backup-2"))
    assert missing.returncode == 1 and "not an etcdx data dir" in missing.stderr


def test_backup_refuses_a_crashed_member_until_it_applied_its_log(tmp_path):
    """A member killed before its backend committed holds acknowledged writes only in its WAL: the backup says
    so; once the member started again (and applied them) and stopped, the backup holds them."""
    etcdx = etcdx_process(tmp_path, extra_args=("--backend-batch-interval", "1h")).start()
    try:
        assert v3ctl(etcdx.client_url, "put", "acknowledged", "yes")[0] == 0
    finally:
        etcdx.kill9()
    refused = etcdx_backup(etcdx.data_dir, str(tmp_path / "backup-refused"))
    assert refused.returncode == 1 and "start the member once so that it applies them" in refused.stderr
    etcdx.start().stop()
    done = etcdx_backup(etcdx.data_dir, str(tmp_path / "backup"))
    assert done.returncode == 0, done.stderr
    with copy_process(tmp_path, [sys.executable, "-m", "etcdx"], str(tmp_path / "backup")).start() as copy:
        assert v3ctl(copy.client_url, "get", "acknowledged") == (0, "acknowledged\nyes\n", "")


def etcdx_backup(data_dir: str, backup_dir: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "etcdx", "backup", "--data-dir", data_dir, "--backup-dir", backup_dir]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def cluster_session(members: list[ServerProcess], spare: int) -> list[tuple[int, str, str]]:
    """The seed's member commands on a cluster of three: list, remove another member, list, add, list."""
    endpoint = members[0].client_url
    time.sleep(6)  # --strict-reconfig-check: the members must have been connected for 5 s
    ids_by_name = {m["name"]: m["id"] for m in listed(members[0])}
    leader = json.loads(urllib.request.urlopen(f"{endpoint}/v2/members/leader", timeout=10).read())
    if leader["name"] != "m0":  # m0 leads, so that the member removed is a follower: etcd 3.4's
        # /v2/members/leader drops the connection (EOF) while the leader it knows is a member just removed
        move = [ETCDCTL_34, "--endpoints", leader["clientURLs"][0], "move-leader", ids_by_name["m0"]]
        subprocess.run(move, env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, timeout=30, check=True)
    removed = ids_by_name["m2"]
    out, ids = [], {}
    for command in (
        ["member", "list"],
        ["member", "remove", removed],
        ["member", "list"],
        ["member", "add", "etcd3", f"http://127.0.0.1:{spare}"],
        ["member", "list"],
    ):
        code, stdout, stderr = etcdctl(endpoint, *command)
        added = re.search(r"with ID ([0-9a-f]+)", stdout)
        if added:
            ids[added.group(1)] = "<added>"
        out.append((code, cluster_normalise(stdout, ids), cluster_normalise(stderr, ids)))
        if command[1] == "remove":  # the removed member stops (etcd and etcdx); list once it has
            members[2].proc.wait(timeout=20)
    return out


def listed(member: ServerProcess) -> list[dict]:
    return json.loads(urllib.request.urlopen(f"{member.client_url}/v2/members", timeout=10).read())["members"]


def cluster_normalise(text: str, ids: dict[str, str]) -> str:
    """The added member's ID (it hashes the time); which member leads (elections differ); members sorted."""
    for member_id, name in ids.items():
        text = text.replace(member_id, name)
    leaders = text.count("isLeader=true")
    text = re.sub(r"isLeader=(true|false)", "isLeader=<?>", text)
    lines = text.split("\n")
    lines = [
        'ETCD_INITIAL_CLUSTER="' + ",".join(sorted(line.split("=", 1)[1].strip('"').split(","))) + '"'
        if line.startswith("ETCD_INITIAL_CLUSTER=")
        else line
        for line in lines
    ]
    if "peerURLs=" in text and all("peerURLs=" in line for line in lines if line):
        lines = sorted(line for line in lines if line) + [f"leaders: {leaders}", ""]
    return "\n".join(lines)


def test_seed_member_commands_on_a_cluster_of_three_match_etcd_34(tmp_path):
    ports, spare = cluster_ports(3), free_ports(1)[0]
    outputs = []
    for command, suffix in (([ETCD_34], "etcd34"), ([sys.executable, "-m", "etcdx"], "etcdx")):
        members = start_cluster(_member_processes(tmp_path, 3, command, suffix, ("--enable-v2",), ports))
        try:
            outputs.append(cluster_session(members, spare))
        finally:
            stop_cluster(members)
    expected, got = outputs
    for want, have in zip(expected, got, strict=True):
        assert have == want
    assert (
        expected[1][0] == 0
        and expected[1][1].startswith("Removed member ")
        and expected[1][1].endswith(" from cluster\n")
    )
    assert "leaders: 1" in expected[0][1] and expected[0][1].count("peerURLs=") == 3
    assert expected[4][1].count("peerURLs=") == 3 and "<added>[unstarted]" in expected[4][1]
