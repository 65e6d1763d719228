"""Put and Range over mutual TLS against plain, on etcdx and on etcd 3.5.1, as ratios.

    python bench/tls_overhead.py [--seconds 3] [--clients 64] [--conns 8] [--servers etcdx,etcd] [--json]

For each server and each mode (plain http://; https:// with --client-cert-auth and a client certificate)
a fresh member is started, `etcdx bench put` and then `etcdx bench range` run for --seconds each with
--clients clients over --conns connections (the native client), and the member is stopped. Prints
requests/s and p99 per case and, per server and scenario, the TLS/plain throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.procs import ETCD, free_ports  # noqa: E402
from tests.support.tls_certs import make_certs  # noqa: E402

SCENARIOS = ("put", "range")


def start(kind: str, tls: bool, directory: Path, certs) -> tuple[subprocess.Popen, str, list[str]]:
    """A member serving on a fresh port; returns (process, endpoint, the bench tool's TLS flags)."""
    client_port, peer_port = free_ports(2)
    scheme = "https" if tls else "http"
    client, peer = f"{scheme}://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    binary = [ETCD] if kind == "etcd" else [sys.executable, "-m", "etcdx"]
    argv = [*binary, "--name", "b", "--data-dir", str(directory / f"{kind}-{scheme}")]
    argv += ["--listen-client-urls", client, "--advertise-client-urls", client]
    argv += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"b={peer}"]
    flags: list[str] = []
    if tls:
        argv += ["--cert-file", certs.server_cert, "--key-file", certs.server_key]
        argv += ["--trusted-ca-file", certs.ca, "--client-cert-auth"]
        flags = ["--cacert", certs.ca, "--cert", certs.client_cert, "--key", certs.client_key]
    log = open(directory / f"{kind}-{scheme}.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if bench(client, "range", flags, ["--total", "1", "--clients", "1"])["succeeded"] == 1:
            return proc, client, flags
        time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{kind} ({scheme}) did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def bench(endpoint: str, scenario: str, tls_flags: list[str], args: list[str]) -> dict:
    argv = [sys.executable, "-m", "etcdx", "bench", scenario, "--endpoints", endpoint, "--json", *tls_flags, *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return {"succeeded": 0, "error": out.stderr[-500:]}
    return json.loads(out.stdout)


def rps(report: dict) -> float:
    return report.get("requests_per_second", 0.0)


def p99_ms(report: dict) -> float | None:
    seconds = report.get("latency_seconds", {}).get("p99")
    return None if seconds is None else seconds * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--servers", default="etcdx,etcd")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load = ["--duration", str(args.seconds), "--clients", str(args.clients), "--conns", str(args.conns)]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        certs = make_certs(directory)
        for kind in args.servers.split(","):
            for tls in (False, True):
                proc, endpoint, flags = start(kind, tls, directory, certs)
                try:
                    for scenario in SCENARIOS:
                        report = bench(endpoint, scenario, flags, load)
                        results[f"{kind} {scenario} {'tls' if tls else 'plain'}"] = report
                finally:
                    stop(proc)
    rows = []
    for kind in args.servers.split(","):
        for scenario in SCENARIOS:
            plain, tls = results[f"{kind} {scenario} plain"], results[f"{kind} {scenario} tls"]
            rows.append(
                {
                    "server": kind,
                    "scenario": scenario,
                    "plain_rps": rps(plain),
                    "tls_rps": rps(tls),
                    "tls_over_plain": rps(tls) / rps(plain) if rps(plain) else None,
                    "plain_p99_ms": p99_ms(plain),
                    "tls_p99_ms": p99_ms(tls),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'server':7} {'scenario':8} {'plain req/s':>12} {'mTLS req/s':>12} {'mTLS/plain':>10} {'p99 ms':>14}")
    for row in rows:
        ratio = f"{row['tls_over_plain']:.2f}" if row["tls_over_plain"] is not None else "-"
        p99 = f"{row['plain_p99_ms'] or 0:.1f}/{row['tls_p99_ms'] or 0:.1f}"
        rates = f"{row['plain_rps']:12.0f} {row['tls_rps']:12.0f}"
        print(f"{row['server']:7} {row['scenario']:8} {rates} {ratio:>10} {p99:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
