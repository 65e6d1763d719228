"""Abuse: each attack against a live member while a well-behaved client reads and writes.

For every attack: the server's peak RSS growth during the attack (VmHWM, reset through /proc/<pid>/clear_refs
just before, minus VmRSS then) and the good client's throughput under attack as a ratio of its throughput
without one (alternated rounds of the same length; medians). The goal is growth < 256 MiB and ratio >= 0.5.

Run: python bench/abuse.py [--attacks ping-flood,rapid-reset] [--seconds 5] [--rounds 3] [--etcd] [--attacker-cpu N]
--attacker-cpu N runs the attacker on CPU N alone and the server and the good client on the other CPUs (every
thread of the server), as if the attacker had a machine of its own: without it, on a small machine, the
attacker's own CPU use slows the good client whatever the server does (the control-cpu-burn row shows how much).
Starts its own server (etcdx, or etcd 3.5.1 with --etcd), runs each attacker in a child process of its own
(``--attacker NAME``), prints one line per attack, stops everything it started.

The harness is shared: to add attacks (HTTP/1.1, connection level), put functions of (endpoint, deadline) ->
Outcome into a registry like tests/support/h2_attacks.ATTACKS and merge it into ATTACKS below; PREPARE holds
what an attack needs stored first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from tests.support import h2_attacks  # noqa: E402
from tests.support.procs import etcd_process, etcdx_process  # noqa: E402


def control_cpu_burn(endpoint: str, deadline: float) -> h2_attacks.Outcome:
    """Not an attack: burns one core without touching the server. On a small shared machine an attacker's own
    CPU slows everything, the good client included; this row shows how much of a ratio is that alone."""
    while time.monotonic() < deadline:
        sum(range(10_000))
    return h2_attacks.Outcome()


ATTACKS = {"control-cpu-burn": control_cpu_burn, **h2_attacks.ATTACKS}
PREPARE = {**h2_attacks.PREPARE}
SETTLE_SECONDS = 1.0


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class PeakRss:
    """The growth of a process's peak RSS from now on: VmHWM after resetting it (and a 20 ms sampler of VmRSS
    as a cross-check for kernels that ignore clear_refs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = status_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.sampled = self.base
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.wait(0.02):
            try:
                self.sampled = max(self.sampled, status_kib(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return

    def growth_mib(self) -> float:
        self.stop.set()
        self.thread.join()
        return (max(status_kib(self.pid, "VmHWM"), self.sampled) - self.base) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def good_client_rate(endpoint: str, seconds: float) -> tuple[float, int]:
    """Operations per second of one client alternating a 100-byte Put and a Range of it; and its failures."""
    ops = failures = 0
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Range(rpc_pb2.RangeRequest(key=b"warm"), timeout=10)
        start = time.monotonic()
        deadline = start + seconds
        i = 0
        while time.monotonic() < deadline:
            key = b"good/%d" % (i % 1000)
            try:
                kv.Put(rpc_pb2.PutRequest(key=key, value=b"v" * 100), timeout=10) if i % 2 == 0 else kv.Range(
                    rpc_pb2.RangeRequest(key=key), timeout=10
                )
                ops += 1
            except grpc.RpcError:
                failures += 1
            i += 1
        return ops / (time.monotonic() - start), failures


@dataclass
class Result:
    attack: str
    rss_growth_mib: float  # the largest over the rounds
    ratio: float  # median over the rounds
    baseline_ops: float
    attacked_ops: float
    good_failures: int
    server_cpu: float  # the server's CPU seconds per second under attack (median)
    attacker: dict


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` (sched_setaffinity on a pid moves one thread only) to ``cpus``."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def run_attack(server, name: str, seconds: float, rounds: int, attacker_cpu: int | None = None) -> Result:
    prepare = PREPARE.get(name)
    if prepare is not None:
        prepare(server.endpoint)
    baselines, attacked, growths, cpu, failures, outcome = [], [], [], [], 0, {}
    for _ in range(rounds):
        baselines.append(good_client_rate(server.endpoint, seconds)[0])
        peak = PeakRss(server.pid)
        attacker = subprocess.Popen(
            [sys.executable, __file__, "--attacker", name, "--endpoint", server.endpoint, "--seconds", str(seconds)],
            stdout=subprocess.PIPE,
            preexec_fn=None if attacker_cpu is None else lambda: os.sched_setaffinity(0, {attacker_cpu}),
        )
        try:
            time.sleep(0.2)  # let the attack start
            cpu_before, start = cpu_seconds(server.pid), time.monotonic()
            rate, failed = good_client_rate(server.endpoint, seconds)
            cpu.append((cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - start))
            out, _ = attacker.communicate(timeout=seconds + 60)
        finally:
            if attacker.poll() is None:
                attacker.kill()
                attacker.wait()
        growths.append(peak.growth_mib())
        attacked.append(rate)
        failures += failed
        outcome = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
        time.sleep(SETTLE_SECONDS)
    base, under = statistics.median(baselines), statistics.median(attacked)
    ratios = [a / b for a, b in zip(attacked, baselines, strict=True) if b]
    return Result(name, max(growths), statistics.median(ratios), base, under, failures, statistics.median(cpu), outcome)


def attacker_main(name: str, endpoint: str, seconds: float) -> None:
    outcome = ATTACKS[name](endpoint, time.monotonic() + seconds)
    summary = asdict(outcome)
    summary["goaway_codes"] = sorted(set(summary["goaway_codes"]))
    summary["goaway_debug"] = sorted({d.decode("latin-1") for d in summary["goaway_debug"]})
    print(json.dumps(summary), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated, of: " + ", ".join(ATTACKS))
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round, with and without attack")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--etcd", action="store_true", help="attack etcd 3.5.1 instead of etcdx")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--attacker-cpu", type=int, help="run the attacker on this CPU, the rest on the others")
    parser.add_argument("--attacker", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        attacker_main(args.attacker, args.endpoint, args.seconds)
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        make = etcd_process if args.etcd else etcdx_process
        with make(Path(tmp)).start() as server:
            if args.attacker_cpu is not None:
                others = set(range(os.cpu_count() or 1)) - {args.attacker_cpu}
                pin_process(server.pid, others)
                pin_process(os.getpid(), others)  # the good client
            for name in args.attacks.split(","):
                result = run_attack(server, name, args.seconds, args.rounds, args.attacker_cpu)
                results.append(result)
                print(
                    f"{name:28} peak RSS +{result.rss_growth_mib:6.1f} MiB   good client {result.ratio:4.2f} "
                    f"({result.attacked_ops:6.0f} vs {result.baseline_ops:6.0f} ops/s, {result.good_failures} failed)"
                    f"   server CPU {result.server_cpu:4.2f}"
                    f"   attacker {json.dumps(result.attacker)}",
                    flush=True,
                )
                if server.proc.poll() is not None:
                    print(f"server died:\n{server.log_tail()}")
                    break
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
