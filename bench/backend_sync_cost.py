"""What backend commits cost: puts/s and fsyncs per put (and range req/s), between two members, on a real disk.

    python bench/backend_sync_cost.py [--rounds 3] [--duration 5] [--clients 1,16,64]
        [--before-tree DIR | --before-plant backend-sync] [--range-clients 64]

The two modes are "before" and "after" (this tree). "before" is either another source tree with its extensions
built (--before-tree, e.g. an export of the integration branch's HEAD: the member runs with PYTHONPATH=DIR), or
this tree with a planted fault (--before-plant backend-sync: LMDB opened ``sync=False, metasync=False``, through
tests/support/powercut_member.py). Each round starts a fresh member on the real disk under ``perf stat``
(counting fsync and fdatasync system calls of every thread of the member), runs ``etcdx bench put`` for
--duration seconds, then (with --range-clients) ``etcdx bench range`` of the key the puts wrote for --duration seconds
(perf counts cover both phases; fsyncs/put comes from the put phase's puts), stops the member, and the two
modes alternate round by round. Prints per-round figures and the median per mode and client count. Needs perf
with syscall tracepoints (root); without them, run with --no-perf for throughput only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.procs import ServerProcess, _cluster_flags, free_ports  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync"


def _member(workdir: str, tree: str, plant: str, perf_out: str | None) -> ServerProcess:
    client_port, peer_port = free_ports(2)
    data_dir = os.path.join(workdir, f"m-{client_port}.etcdx")
    flags = _cluster_flags("b", data_dir, client_port, peer_port)
    # -P: the member imports from PYTHONPATH (its tree), not from the current directory
    argv = [sys.executable, "-P", "-m", "tests.support.powercut_member", *flags]
    if perf_out:
        argv = ["perf", "stat", "-x", ",", "-e", EVENTS, "-o", perf_out, "--", *argv]
    log = os.path.join(workdir, f"m-{client_port}.log")
    env = {"ETCDX_TEST_PLANT": plant, "PYTHONPATH": tree}
    return ServerProcess(argv, data_dir, client_port, peer_port, log, env=env)


def _stop(member: ServerProcess, perf: bool) -> None:
    """SIGTERM to the member itself (perf's child when counting), then waits for perf to write its counts."""
    if perf:
        with open(f"/proc/{member.pid}/task/{member.pid}/children") as f:
            child = int(f.read().split()[0])
        os.kill(child, signal.SIGTERM)
        member.proc.wait(timeout=30)
    member.stop()


def _fsyncs(perf_out: str) -> int:
    total = 0
    with open(perf_out) as f:
        for line in f:
            if re.search(r"sys_enter_f(data)?sync", line):
                total += int(line.split(",")[0])
    return total


def _bench(endpoint: str, scenario: str, clients: int, duration: float, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "etcdx", "bench", scenario, "--endpoints", endpoint, "--clients", str(clients)]
        + ["--conns", str(min(clients, 4)), "--duration", str(duration), "--json", *extra],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": HERE},
    ).stdout
    return json.loads(out)


def _round(
    workdir: str, tree: str, plant: str, clients: int, range_clients: int, duration: float, perf: bool
) -> tuple[float, int, float, float]:
    """(puts/s, puts, fsyncs per put, range req/s or nan)."""
    perf_out = os.path.join(workdir, f"perf-{time.monotonic_ns()}.csv") if perf else None
    member = _member(workdir, tree, plant, perf_out)
    member.start()
    ranges = float("nan")
    try:
        report = _bench(member.endpoint, "put", clients, duration)
        if range_clients:
            # the put phase wrote key "00000000" (key space 1, key size 8): read it
            ranges = _bench(member.endpoint, "range", range_clients, duration, "--range-key", "00000000")[
                "requests_per_second"
            ]
    finally:
        _stop(member, perf)
    puts = report["succeeded"]
    rate = report["requests_per_second"]
    fsyncs = _fsyncs(perf_out) if perf else -1
    return rate, puts, (fsyncs / puts if perf and puts else float("nan")), ranges


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--range-clients", type=int, default=0, help="also bench range with this many clients")
    before = parser.add_mutually_exclusive_group(required=True)
    before.add_argument("--before-tree", help="the source tree of the member to compare with")
    before.add_argument("--before-plant", choices=["backend-sync"], help="this tree with a planted fault")
    parser.add_argument("--no-perf", action="store_true")
    args = parser.parse_args()
    if args.before_tree:
        modes = {f"before ({args.before_tree})": (os.path.abspath(args.before_tree), ""), "after": (HERE, "")}
    else:
        modes = {f"before ({args.before_plant} planted)": (HERE, args.before_plant), "after": (HERE, "")}
    results: dict[tuple[str, int], list[tuple[float, int, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="etcdx-syncbench-", dir=os.environ.get("BENCH_DIR")) as workdir:
        for clients in [int(c) for c in args.clients.split(",")]:
            for round_number in range(args.rounds):
                for mode, (tree, plant) in modes.items():
                    figures = _round(workdir, tree, plant, clients, args.range_clients, args.duration, not args.no_perf)
                    results.setdefault((mode, clients), []).append(figures)
                    rate, puts, per_put, ranges = figures
                    print(
                        f"round {round_number} clients={clients} {mode}: {rate:.0f} puts/s, {puts} puts, "
                        f"{per_put:.2f} fsyncs/put, range x{args.range_clients}: {ranges:.0f} req/s",
                        flush=True,
                    )
    print("median of rounds:")
    for (mode, clients), rounds in results.items():
        rate = statistics.median(r[0] for r in rounds)
        per_put = statistics.median(r[2] for r in rounds)
        ranges = statistics.median(r[3] for r in rounds)
        print(
            f"  clients={clients:<3} {mode}: {rate:.0f} puts/s, {per_put:.2f} fsyncs/put, "
            f"range x{args.range_clients}: {ranges:.0f} req/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
