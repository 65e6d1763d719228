"""Real etcdx and etcd 3.5.1 processes with auth options: plain or TLS client URLs, simple or JWT tokens.

``secured_pair(directory, tls=..., token=...)`` gives an etcdx and an etcd started with the same flags (the
same CA-signed server certificate, the same JWT key pair, --bcrypt-cost 4 so password checks stay cheap),
for differential tests. Every process is stopped by PID (ServerProcess.stop) by the caller.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from etcdx.pb.grpc.health.v1 import health_pb2, health_pb2_grpc
from tests.support.procs import ETCD, READY_TIMEOUT, ServerProcess, free_ports
from tests.support.tls_certs import CertAuthority

BCRYPT_COST = "4"


@dataclass
class Secured(ServerProcess):
    """A server whose client URL may be https (``ca`` set): readiness is checked over TLS then."""

    ca: str = ""
    ready_cert: tuple[str, str] = ("", "")  # the client certificate and key readiness is checked with

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.endpoint}"

    def tls_flags(self) -> list[str]:
        """What etcdctl needs to reach this server."""
        return ["--cacert", self.ca] if self.ca else []

    def channel(self, cert: str = "", key: str = "") -> grpc.Channel:
        if not self.ca:
            return grpc.insecure_channel(self.endpoint)
        read = lambda path: Path(path).read_bytes() if path else None  # noqa: E731
        return grpc.secure_channel(self.endpoint, grpc.ssl_channel_credentials(read(self.ca), read(key), read(cert)))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with self.channel(*self.ready_cert) as channel:  # the health service needs no user
                    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.RpcError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")


@dataclass(frozen=True)
class Material:
    """Server certificate (CA-signed, for 127.0.0.1) and a JWT RSA key pair, as files."""

    ca: CertAuthority
    server_cert: str
    server_key: str
    jwt_private: str
    jwt_public: str

    def auth_token(self, token: str, ttl: str = "5m") -> str:
        if token == "simple":
            return "simple"
        return f"jwt,pub-key={self.jwt_public},priv-key={self.jwt_private},sign-method=RS256,ttl={ttl}"


def make_material(directory: Path) -> Material:
    ca = CertAuthority(directory)
    server = ca.issue("server", "etcd test server", ("127.0.0.1", "localhost"), server=True, client=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "jwt.key"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = directory / "jwt.pub"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return Material(ca, server.cert, server.key, str(private), str(public))


def secured(
    directory: Path,
    material: Material,
    *,
    etcdx: bool,
    tls: bool,
    token: str,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Secured:
    """An etcdx (``etcdx``) or etcd 3.5.1 server, not started yet."""
    client_port, peer_port = free_ports(2)
    name = "etcdx" if etcdx else "etcd"
    data_dir = str(directory / f"{name}-{client_port}.data")
    client = f"{'https' if tls else 'http'}://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    argv = [sys.executable, "-m", "etcdx"] if etcdx else [ETCD]
    argv += ["--name", "default", "--data-dir", data_dir, "--listen-client-urls", client]
    argv += ["--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
    argv += ["--initial-cluster", f"default={peer}", "--auth-token", material.auth_token(token)]
    argv += ["--bcrypt-cost", BCRYPT_COST]
    if tls:
        argv += ["--cert-file", material.server_cert, "--key-file", material.server_key]
    argv += list(extra)
    log_path = str(directory / f"{name}-{client_port}.log")
    return Secured(
        argv, data_dir, client_port, peer_port, log_path, env=dict(env or {}), ca=material.ca.path if tls else ""
    )
