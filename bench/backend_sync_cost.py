"""What the power-cut-safe LMDB flags cost: puts/s and fsyncs per put, before and after, on a real member.

    python bench/backend_sync_cost.py [--rounds 3] [--duration 5] [--clients 1,16]

"before" is the member as it was: LMDB opened with ``sync=False, metasync=False`` (started through
tests/support/powercut_member.py with ETCDX_TEST_PLANT=backend-sync, which changes only that). "after" is the
member as it is: ``sync=True, metasync=False`` (one fdatasync per backend commit). Each round starts a fresh
member on the real disk under ``perf stat`` (counting fsync and fdatasync system calls of every thread of the
member), runs ``etcdx bench put`` for --duration seconds, stops the member, and the two modes alternate round by
round. Prints per-round figures and the median per mode and client count. Needs perf with syscall tracepoints
(root); without them, run with --no-perf for throughput only.
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

MODES = {"before (sync=False, metasync=False)": "backend-sync", "after (sync=True, metasync=False)": ""}
EVENTS = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync"


def _member(workdir: str, plant: str, perf_out: str | None) -> ServerProcess:
    client_port, peer_port = free_ports(2)
    data_dir = os.path.join(workdir, f"m-{client_port}.etcdx")
    flags = _cluster_flags("b", data_dir, client_port, peer_port)
    argv = [sys.executable, "-m", "tests.support.powercut_member", *flags]
    if perf_out:
        argv = ["perf", "stat", "-x", ",", "-e", EVENTS, "-o", perf_out, "--", *argv]
    log = os.path.join(workdir, f"m-{client_port}.log")
    return ServerProcess(argv, data_dir, client_port, peer_port, log, env={"ETCDX_TEST_PLANT": plant})


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


def _round(workdir: str, plant: str, clients: int, duration: float, perf: bool) -> tuple[float, int, float]:
    perf_out = os.path.join(workdir, f"perf-{time.monotonic_ns()}.csv") if perf else None
    member = _member(workdir, plant, perf_out)
    member.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "etcdx", "bench", "put", "--endpoints", member.endpoint, "--clients", str(clients)]
            + ["--conns", str(min(clients, 4)), "--duration", str(duration), "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        _stop(member, perf)
    report = json.loads(out)
    puts = report["succeeded"]
    rate = report["requests_per_second"]
    fsyncs = _fsyncs(perf_out) if perf else -1
    return rate, puts, (fsyncs / puts if perf and puts else float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--no-perf", action="store_true")
    args = parser.parse_args()
    results: dict[tuple[str, int], list[tuple[float, int, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="etcdx-syncbench-", dir=os.environ.get("BENCH_DIR")) as workdir:
        for clients in [int(c) for c in args.clients.split(",")]:
            for round_number in range(args.rounds):
                for mode, plant in MODES.items():
                    figures = _round(workdir, plant, clients, args.duration, not args.no_perf)
                    results.setdefault((mode, clients), []).append(figures)
                    rate, puts, per_put = figures
                    print(
                        f"round {round_number} clients={clients} {mode}: {rate:.0f} puts/s, {puts} puts, "
                        f"{per_put:.2f} fsyncs/put",
                        flush=True,
                    )
    print("median of rounds:")
    for (mode, clients), rounds in results.items():
        rate = statistics.median(r[0] for r in rounds)
        per_put = statistics.median(r[2] for r in rounds)
        print(f"  clients={clients:<3} {mode}: {rate:.0f} puts/s, {per_put:.2f} fsyncs/put")
    return 0


if __name__ == "__main__":
    sys.exit(main())
