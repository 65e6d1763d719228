"""`etcdx bench` over TLS against real etcd 3.5.1 serving https with client-certificate auth, with both
clients: --cacert/--cert/--key verify and authenticate, a name the certificate does not carry fails
(counted), --insecure-skip-tls-verify connects anyway, and a missing client certificate fails (counted)."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.integration.test_bench_tool import bench
from tests.support.procs import ETCD, READY_TIMEOUT, ServerProcess, free_ports
from tests.support.tls_certs import CertFiles, make_certs

CLIENTS = ["native", "grpcio"]


class TlsEtcd(ServerProcess):
    """etcd serving clients on https://127.0.0.1:<port> with a certificate for "localhost" only."""

    certs: CertFiles

    def channel(self) -> grpc.Channel:
        ca, key, cert = (
            Path(path).read_bytes() for path in (self.certs.ca, self.certs.client_key, self.certs.client_cert)
        )
        return grpc.secure_channel(f"localhost:{self.client_port}", grpc.ssl_channel_credentials(ca, key, cert))

    def revision(self) -> int:
        with self.channel() as channel:
            return rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"x"), timeout=5).header.revision

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.revision()
                return
            except grpc.RpcError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"etcd not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tls-etcd")
    certs = make_certs(tmp_path, server_names=("localhost",))
    client_port, peer_port = free_ports(2)
    client, peer = f"https://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    argv = [ETCD, "--name", "tls", "--data-dir", str(tmp_path / "data")]
    argv += ["--listen-client-urls", client, "--advertise-client-urls", client]
    argv += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"tls={peer}"]
    argv += ["--cert-file", certs.server_cert, "--key-file", certs.server_key]
    argv += ["--trusted-ca-file", certs.ca, "--client-cert-auth"]
    server = TlsEtcd(argv, str(tmp_path / "data"), client_port, peer_port, str(tmp_path / "etcd.log"))
    server.certs = certs
    with server.start():
        yield server


@pytest.mark.parametrize("client", CLIENTS)
def test_verified_tls_with_a_client_certificate_counts_every_put(tls_etcd, client):
    certs = tls_etcd.certs
    before = tls_etcd.revision()
    flags = ["--cacert", certs.ca, "--cert", certs.client_cert, "--key", certs.client_key]
    endpoint = f"https://localhost:{tls_etcd.client_port}"
    report = bench(endpoint, "put", "--total", "300", "--clients", "8", *flags, client=client)
    assert report["succeeded"] == 300 and report["errors"] == {}
    assert tls_etcd.revision() - before == 300


@pytest.mark.parametrize("client", CLIENTS)
def test_skip_verify_connects_where_verification_fails(tls_etcd, client):
    certs = tls_etcd.certs
    address = f"127.0.0.1:{tls_etcd.client_port}"  # the certificate names only "localhost"
    client_cert = ["--cert", certs.client_cert, "--key", certs.client_key]
    verified = bench(address, "put", "--total", "20", "--cacert", certs.ca, *client_cert, client=client)
    assert verified["succeeded"] == 0 and sum(verified["errors"].values()) == 20
    assert all(label.startswith("UNAVAILABLE: ") for label in verified["errors"])
    before = tls_etcd.revision()
    skipped = bench(address, "range", "--total", "50", "--insecure-skip-tls-verify", *client_cert, client=client)
    assert skipped["succeeded"] == 50 and skipped["errors"] == {}
    assert tls_etcd.revision() == before


@pytest.mark.parametrize("client", CLIENTS)
def test_a_server_demanding_a_client_certificate_refuses_one_without(tls_etcd, client):
    endpoint = f"https://localhost:{tls_etcd.client_port}"
    report = bench(endpoint, "put", "--total", "20", "--cacert", tls_etcd.certs.ca, client=client)
    assert report["succeeded"] == 0 and sum(report["errors"].values()) == 20
    assert all(label.startswith("UNAVAILABLE: ") for label in report["errors"])
