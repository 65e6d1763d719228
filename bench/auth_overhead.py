"""Put and Range at 64 clients over mutual TLS with auth enabled, against plain without auth, on etcdx and on
etcd 3.5.1, as ratios.

    python bench/auth_overhead.py [--seconds 3] [--clients 64] [--conns 8] [--servers etcdx,etcd] [--json]

The secured member serves https:// with --client-cert-auth and has auth enabled; the bench tool's client
certificate (CN "etcdx test client") is its user name (CN auth, no token), a non-root user holding readwrite
on every key, so each request passes the full permission check. Members and the bench tool are started and
stopped as in bench/tls_overhead.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tls_overhead import bench, p99_ms, rps, start, stop  # noqa: E402

from etcdx.pb.authpb import auth_pb2  # noqa: E402
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from tests.support.tls_certs import make_certs  # noqa: E402

SCENARIOS = ("put", "range")
BENCH_USER = "etcdx test client"  # the CN of make_certs' client certificate


def enable_auth(endpoint: str, certs) -> None:
    """root, and the certificate's user with readwrite on every key; then AuthEnable."""
    read = lambda path: Path(path).read_bytes()  # noqa: E731
    creds = grpc.ssl_channel_credentials(read(certs.ca), read(certs.client_key), read(certs.client_cert))
    with grpc.secure_channel(endpoint.removeprefix("https://"), creds) as channel:
        auth = rpc_pb2_grpc.AuthStub(channel)
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name=BENCH_USER, password="benchpw"), timeout=10)
        auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="everything"), timeout=10)
        everything = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"\x00", range_end=b"\x00")
        auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="everything", perm=everything))
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user=BENCH_USER, role="everything"), timeout=10)
        auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)


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
            for secured in (False, True):
                proc, endpoint, flags = start(kind, secured, directory, certs)
                try:
                    if secured:
                        enable_auth(endpoint, certs)
                    for scenario in SCENARIOS:
                        report = bench(endpoint, scenario, flags, load)
                        results[f"{kind} {scenario} {'secured' if secured else 'plain'}"] = report
                finally:
                    stop(proc)
    rows = []
    for kind in args.servers.split(","):
        for scenario in SCENARIOS:
            plain, secured = results[f"{kind} {scenario} plain"], results[f"{kind} {scenario} secured"]
            rows.append(
                {
                    "server": kind,
                    "scenario": scenario,
                    "plain_rps": rps(plain),
                    "secured_rps": rps(secured),
                    "secured_over_plain": rps(secured) / rps(plain) if rps(plain) else None,
                    "plain_p99_ms": p99_ms(plain),
                    "secured_p99_ms": p99_ms(secured),
                    "secured_failed": secured.get("failed", 0) if secured.get("succeeded") else secured.get("error"),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'server':7} {'scenario':8} {'plain req/s':>12} {'mTLS+auth':>12} {'ratio':>6} {'p99 ms':>14}")
    for row in rows:
        ratio = f"{row['secured_over_plain']:.2f}" if row["secured_over_plain"] is not None else "-"
        p99 = f"{row['plain_p99_ms'] or 0:.1f}/{row['secured_p99_ms'] or 0:.1f}"
        rates = f"{row['plain_rps']:12.0f} {row['secured_rps']:12.0f}"
        print(f"{row['server']:7} {row['scenario']:8} {rates} {ratio:>6} {p99:>14}  failed={row['secured_failed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
