"""A 3-member etcdx cluster against a 3-member etcd 3.5.1 cluster on this machine: Put, Range linearizable
and Range serializable at 1, 16 and 64 clients, as ratios, with the servers' CPU per request.

    python bench/cluster_compare.py --out bench/reports/2026-12-03-cluster-3v3 [--size 3] [--repeat 3]
        [--duration 2] [--clients 1,16,64] [--scenarios put,range-linearizable,range-serializable] [--conns 3]

Both clusters run for the whole measurement, started with the same flags (tests/support/procs.py
etcd_cluster / etcdx_cluster: names m0.., loopback URLs, the default cluster token) and stopped by PID at the
end. The load is `etcdx bench` (etcdx.cli.bench.compare.run_cell, the tool `etcdx bench compare` uses), its
connections spread over every member's endpoint, the leader's first (so one client talks to the leader, in
both clusters); followers forward writes to the leader and ask it for the read index, as etcd's do. Every cell
runs once per cluster per round, the clusters back to back (ABAB...), figures are medians over the rounds.
Server CPU per request is the sum over the members (and their read workers) of /proc/<pid>/stat user + system time
over the run, divided by the requests. The report folder gets report.md (etcdx bench compare's format plus the
cluster section), results.json and the plots.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile

import grpc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from etcdx.cli.bench import compare  # noqa: E402
from etcdx.cli.bench.proc_cpu import server_cpu_seconds  # noqa: E402
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from etcdx.version import ETCDX_VERSION  # noqa: E402
from tests.support.procs import ETCD, ServerProcess, etcd_cluster, etcdx_cluster, start_cluster, stop_cluster  # noqa: E402

DEFAULT_SCENARIOS = "put,range-linearizable,range-serializable"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=3, help="members per cluster")
    parser.add_argument(
        "--scenarios", default=DEFAULT_SCENARIOS, help=f"comma-separated, of: {', '.join(compare.MATRIX)}"
    )
    parser.add_argument("--clients", default="1,16,64", help="comma-separated client counts")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians over them")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    parser.add_argument("--conns", type=int, default=3, help="gRPC connections per load process (spread over members)")
    parser.add_argument("--processes", type=int, default=1, help="load-generating processes per run")
    parser.add_argument("--out", required=True, help="report folder (created)")
    options = parser.parse_args(argv)
    options.scenarios = [s.strip() for s in options.scenarios.split(",") if s.strip()]
    unknown = [s for s in options.scenarios if s not in compare.MATRIX]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    options.clients = [int(c) for c in options.clients.split(",")]
    # what etcdx bench compare's report and run_cell read
    options.client, options.client_kinds, options.baseline, options.cdf_scenario = "native", ["native"], "etcd", "put"
    return options


def status(member: ServerProcess) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as channel:
        return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=5)


def leader_first(members: list[ServerProcess]) -> list[ServerProcess]:
    """The members, the one that leads now first (every member must name the same leader)."""
    statuses = [status(m) for m in members]
    leaders = {s.leader for s in statuses}
    if len(leaders) != 1 or 0 in leaders:
        raise RuntimeError(f"the members do not agree on a leader: {leaders}")
    (leader,) = leaders
    return sorted(members, key=lambda m: statuses[members.index(m)].header.member_id != leader)


def cluster_target(name: str, members: list[ServerProcess], version: str) -> compare.Target:
    ordered = leader_first(members)
    endpoint = ",".join(m.endpoint for m in ordered)
    with grpc.insecure_channel(ordered[0].endpoint) as channel:  # the range scenarios read key "foo"
        rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"foo", value=b"bar"), timeout=10)
    return compare.Target(name, endpoint, version)


def run_cell(target: compare.Target, pids: list[int], cell: compare.Cell, options) -> dict:
    """One `etcdx bench` run against the cluster, with the members' CPU per request added (each member's
    process and its children: etcdx's read workers)."""
    before = sum(server_cpu_seconds(pid) for pid in pids)
    result = compare.run_cell(target, cell, options)
    cpu = sum(server_cpu_seconds(pid) for pid in pids) - before
    result["server_cpu_seconds"] = cpu
    result["server_cpu_us_per_request"] = 1e6 * cpu / result["succeeded"] if result["succeeded"] else None
    return result


def run_matrix(targets: list[tuple[compare.Target, list[int]]], options) -> list[compare.Cell]:
    cells = [compare.Cell(s, c, {t.name: [] for t, _ in targets}) for s in options.scenarios for c in options.clients]
    runs, done = options.repeat * len(cells) * len(targets), 0
    for round_number in range(options.repeat):
        for cell in cells:
            for target, pids in targets:
                result = run_cell(target, pids, cell, options)
                cell.runs[target.name].append(result)
                done += 1
                sys.stderr.write(
                    f"[{done}/{runs}] round {round_number + 1} {cell.scenario} c={cell.clients} {target.name}: "
                    f"{result['requests_per_second']:.0f} req/s\n"
                )
    return cells


def cluster_section(clusters: dict[str, list[ServerProcess]], targets: list[compare.Target]) -> str:
    lines = ["", "## Clusters", ""]
    lines.append(
        "Each target is a cluster: its endpoints, the leader's first, carry the load tool's connections in "
        "turn; 'server us/req' is the sum over its members of /proc/<pid>/stat user + system time over the "
        "run, divided by the requests. Both clusters ran during the whole measurement."
    )
    lines.append("")
    for target in targets:
        members = clusters[target.name]
        names = ", ".join(f"{m.argv[m.argv.index('--name') + 1]} ({m.pid})" for m in members)
        argv = members[0].argv
        lines.append(f"- {target.name}: endpoints {target.endpoint}; members (pid): {names}")
        lines.append(f"  - m0's flags: `{shlex.join(argv[argv.index('--name') :])}`")
    return "\n".join(lines) + "\n"


def add_members(results_path: str, clusters: dict[str, list[ServerProcess]]) -> None:
    """Each target's members (name, endpoint, pid) into results.json."""
    with open(results_path) as f:
        results = json.load(f)
    for target in results["targets"]:
        target["members"] = [
            {"name": m.argv[m.argv.index("--name") + 1], "endpoint": m.endpoint, "pid": m.pid}
            for m in clusters[target["name"]]
        ]
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)


def main(argv: list[str]) -> int:
    options = parse(argv)
    command = shlex.join(["python", "bench/cluster_compare.py", *argv])
    root = tempfile.mkdtemp(prefix="cluster-compare-")
    clusters: dict[str, list[ServerProcess]] = {}
    try:
        for name, make in (("etcd", etcd_cluster), ("etcdx", etcdx_cluster)):
            data = pathlib.Path(root) / name
            data.mkdir()
            clusters[name] = start_cluster(make(data, options.size))
        etcd_version = subprocess.run([ETCD, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        versions = {"etcd": etcd_version, "etcdx": f"etcdx {ETCDX_VERSION} (git {compare._git_commit()})"}
        targets = [(cluster_target(n, m, versions[n]), [p.pid for p in m]) for n, m in clusters.items()]
        cells = run_matrix(targets, options)
    finally:
        for members in clusters.values():
            stop_cluster(members)
        shutil.rmtree(root, ignore_errors=True)
    plain = [t for t, _ in targets]
    compare.write_report(plain, cells, options, command)
    with open(os.path.join(options.out, "report.md"), "a") as f:
        f.write(cluster_section(clusters, plain))
    add_members(os.path.join(options.out, "results.json"), clusters)
    sys.stdout.write(f"report: {os.path.join(options.out, 'report.md')}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
