"""Client TLS on a live member: the KV and Watch calls over TLS and over mutual TLS with etcdctl 3.5.1
(grpc-go), etcdctl 3.4, grpcio and the `h2` library; unix:// and unixs:// listeners; and the refusals a
user checks: no client certificate, a revoked one (CRL), an expired one, one from another CA, a server
certificate the client does not trust. Each refusal leaves etcd's
"rejected connection" log line with the reason.

Two members serve the whole module: ``mtls`` (certificates from a test CA, --client-cert-auth, a CRL,
https + unixs + unix listeners, peer TLS with an allowed CN) and ``auto`` (--auto-tls, no client
certificates). tests/integration/test_tls_listener.py covers what needs short limits or rotated files."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from cryptography import x509

from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.procs import ETCD, ETCDCTL, ETCDCTL_34, READY_TIMEOUT, ServerProcess, _live, free_ports
from tests.support.tls_certs import CertAuthority, Issued

ETCDCTLS = pytest.mark.parametrize("binary", [ETCDCTL, ETCDCTL_34], ids=["etcdctl-3.5", "etcdctl-3.4"])


@dataclass
class Trust:
    """What a client presents and trusts."""

    ca: str
    cert: str = ""
    key: str = ""

    def etcdctl_flags(self) -> list[str]:
        flags = ["--cacert", self.ca]
        if self.cert:
            flags += ["--cert", self.cert, "--key", self.key]
        return flags

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        read = lambda path: Path(path).read_bytes() if path else None  # noqa: E731
        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))

    def ssl_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert:
            context.load_cert_chain(self.cert, self.key)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


class TlsMember(ServerProcess):
    """An etcdx member whose client URL is https; started in ``cwd`` (where its unix sockets live)."""

    trust: Trust
    cwd: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    def start(self) -> TlsMember:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, cwd=self.cwd
        )
        log.close()
        _live[self.proc.pid] = self.proc
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcdx exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.trust.ca and Path(self.trust.ca).exists():
                    with grpc.secure_channel(self.endpoint, self.trust.grpc_credentials()) as channel:
                        rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"ready?"), timeout=1)
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"etcdx not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")

    def rejections(self) -> list[str]:
        """The reasons of every "rejected connection" line logged so far."""
        with open(self.log_path, errors="replace") as f:
            lines = [json.loads(line) for line in f if '"rejected connection"' in line]
        return [line["error"] for line in lines]


def member(
    tmp_path: Path, flags: list[str], trust: Trust, *, more_client_urls: tuple[str, ...] = (), peer_scheme: str = "http"
) -> TlsMember:
    client_port, peer_port = free_ports(2)
    client, peer = f"https://127.0.0.1:{client_port}", f"{peer_scheme}://127.0.0.1:{peer_port}"
    argv = [sys.executable, "-m", "etcdx", "--name", "tls", "--data-dir", str(tmp_path / "data")]
    argv += ["--listen-client-urls", ",".join([client, *more_client_urls]), "--advertise-client-urls", client]
    argv += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"tls={peer}"]
    server = TlsMember([*argv, *flags], str(tmp_path / "data"), client_port, peer_port, str(tmp_path / "etcdx.log"))
    server.trust, server.cwd = trust, str(tmp_path)
    return server


@dataclass
class Pki:
    ca: CertAuthority
    client: Issued
    revoked: Issued
    expired: Issued
    stranger: Issued  # signed by another CA
    peer: Issued  # CN "member-1", the peer port's allowed CN
    elsewhere: Issued  # CN "member-1", but for another address
    crl: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertAuthority(directory)
    other = CertAuthority(directory, "another CA")
    return Pki(
        ca=ca,
        client=ca.issue("client"),
        revoked=(revoked := ca.issue("revoked")),
        expired=ca.issue("expired", expired=True),
        stranger=other.issue("stranger"),
        peer=ca.issue("peer", "member-1", ("127.0.0.1",), server=True),
        elsewhere=ca.issue("elsewhere", "member-1", ("10.9.9.9",), server=True),
        crl=ca.crl("revoked", [revoked]),
    )


@pytest.fixture(scope="module")
def mtls(tmp_path_factory, pki):
    tmp_path = tmp_path_factory.mktemp("mtls")
    server_cert = pki.ca.issue("server", "etcdx server", ("127.0.0.1", "localhost"), server=True, client=False)
    unix_port, unixs_port = free_ports(2)
    unix_urls = (f"unixs://localhost:{unixs_port}", f"unix://localhost:{unix_port}")
    extra = ["--cert-file", server_cert.cert, "--key-file", server_cert.key, "--trusted-ca-file", pki.ca.path]
    extra += ["--client-cert-auth", "--client-crl-file", pki.crl]
    extra += ["--peer-cert-file", server_cert.cert, "--peer-key-file", server_cert.key]
    extra += ["--peer-trusted-ca-file", pki.ca.path, "--peer-client-cert-auth", "--peer-crl-file", pki.crl]
    extra += ["--peer-cert-allowed-cn", "member-1"]
    trust = Trust(pki.ca.path, pki.client.cert, pki.client.key)
    server = member(tmp_path, extra, trust, more_client_urls=unix_urls, peer_scheme="https")
    server.unix_endpoints = unix_urls
    with server.start():
        yield server


@pytest.fixture(scope="module")
def auto(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("auto")
    trust = Trust(str(tmp_path / "data" / "fixtures" / "client" / "cert.pem"))
    server = member(tmp_path, ["--auto-tls", "--peer-auto-tls"], trust, peer_scheme="https")
    with server.start():
        yield server


@pytest.fixture(params=["mtls", "auto"], ids=["mutual-tls", "tls"])
def secured(request):
    return request.getfixturevalue(request.param)


# --- the KV and Watch calls, with each client ---------------------------------------------------------


def etcdctl(
    binary: str, endpoint: str, trust: Trust, *args: str, check: bool = True, cwd: str | None = None
) -> subprocess.CompletedProcess:
    argv = [binary, "--endpoints", endpoint, *trust.etcdctl_flags(), "--dial-timeout", "3s", "--command-timeout", "5s"]
    env = {**os.environ, "ETCDCTL_API": "3"}
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=30, check=check, env=env, cwd=cwd)


def etcdctl_kv_and_watch(binary: str, endpoint: str, trust: Trust, key: str, cwd: str | None = None) -> None:
    """put, get, then a watch from the next revision (so it sees the events whenever it connects) of a
    put and a delete."""
    assert etcdctl(binary, endpoint, trust, "put", key, "v1", cwd=cwd).stdout == "OK\n"
    assert etcdctl(binary, endpoint, trust, "get", key, cwd=cwd).stdout == f"{key}\nv1\n"
    revision = json.loads(etcdctl(binary, endpoint, trust, "get", key, "-w", "json", cwd=cwd).stdout)["header"]
    argv = [
        binary,
        "--endpoints",
        endpoint,
        *trust.etcdctl_flags(),
        "watch",
        key,
        "--rev",
        str(revision["revision"] + 1),
    ]
    env = {**os.environ, "ETCDCTL_API": "3"}
    watcher = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        etcdctl(binary, endpoint, trust, "put", key, "v2", cwd=cwd)
        etcdctl(binary, endpoint, trust, "del", key, cwd=cwd)
        deadline = time.monotonic() + 15
        while len(lines) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        reader.join(timeout=10)
    assert "".join(lines) == f"PUT\n{key}\nv2\nDELETE\n{key}\n\n"


@ETCDCTLS
def test_etcdctl_kv_and_watch(secured, binary):
    etcdctl_kv_and_watch(binary, secured.url, secured.trust, f"ctl/{Path(binary).parent.name}")


def test_grpcio_kv_and_watch(secured):
    with grpc.secure_channel(secured.endpoint, secured.trust.grpc_credentials()) as channel:
        kv, watch = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.WatchStub(channel)
        put = kv.Put(rpc_pb2.PutRequest(key=b"grpcio/k", value=b"v1"), timeout=5)
        got = kv.Range(rpc_pb2.RangeRequest(key=b"grpcio/k"), timeout=5)
        assert [(kv_.key, kv_.value) for kv_ in got.kvs] == [(b"grpcio/k", b"v1")]
        requests = iter([rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"grpcio/k"))])
        responses = watch.Watch(requests, timeout=10)
        assert next(responses).created
        kv.Put(rpc_pb2.PutRequest(key=b"grpcio/k", value=b"v2"), timeout=5)
        event = next(responses).events[0]
        assert (event.kv.value, event.kv.mod_revision) == (b"v2", put.header.revision + 1)
        responses.cancel()


class H2Client:
    """gRPC by hand over a TLS socket that negotiated h2 by ALPN (the `h2` library as the HTTP/2 side)."""

    def __init__(self, port: int, trust: Trust) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = trust.ssl_context(["h2"]).wrap_socket(raw, server_hostname="127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.data: dict[int, bytes] = {}
        self.ended: set[int] = set()

    def open(self, path: str, message: bytes, end: bool) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "https"), (":authority", "127.0.0.1"), (":path", path)]
        headers += [("content-type", "application/grpc"), ("te", "trailers")]
        self.conn.send_headers(sid, headers)
        self.conn.send_data(sid, struct.pack(">BI", 0, len(message)) + message, end_stream=end)
        self.sock.sendall(self.conn.data_to_send())
        self.data[sid] = b""
        return sid

    def pump(self, until) -> None:
        while not until():
            chunk = self.sock.recv(65536)
            assert chunk, "server closed the connection"
            for event in self.conn.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    self.data[event.stream_id] += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.add(event.stream_id)
            self.sock.sendall(self.conn.data_to_send())

    def messages(self, sid: int) -> list[bytes]:
        out, data = [], self.data[sid]
        while len(data) >= 5:
            (length,) = struct.unpack(">I", data[1:5])
            if len(data) < 5 + length:
                break
            out.append(data[5 : 5 + length])
            data = data[5 + length :]
        return out

    def unary(self, path: str, message: bytes) -> bytes:
        sid = self.open(path, message, end=True)
        self.pump(lambda: sid in self.ended)
        return self.messages(sid)[0]


def test_h2_library_kv_and_watch(secured):
    client = H2Client(secured.client_port, secured.trust)
    try:
        client.unary("/etcdserverpb.KV/Put", rpc_pb2.PutRequest(key=b"h2/k", value=b"v1").SerializeToString())
        got = rpc_pb2.RangeResponse.FromString(
            client.unary("/etcdserverpb.KV/Range", rpc_pb2.RangeRequest(key=b"h2/k").SerializeToString())
        )
        assert [(kv.key, kv.value) for kv in got.kvs] == [(b"h2/k", b"v1")]
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"h2/k"))
        watch = client.open("/etcdserverpb.Watch/Watch", create.SerializeToString(), end=False)
        client.pump(lambda: len(client.messages(watch)) >= 1)
        assert rpc_pb2.WatchResponse.FromString(client.messages(watch)[0]).created
        client.unary("/etcdserverpb.KV/Put", rpc_pb2.PutRequest(key=b"h2/k", value=b"v2").SerializeToString())
        client.pump(lambda: len(client.messages(watch)) >= 2)
        event = rpc_pb2.WatchResponse.FromString(client.messages(watch)[1]).events[0]
        assert (event.kv.key, event.kv.value) == (b"h2/k", b"v2")
    finally:
        client.sock.close()


def test_http_clients_get_http1_by_alpn(secured):
    """A client offering both protocols (as curl does) gets http/1.1 and the HTTP endpoints."""
    raw = socket.create_connection(("127.0.0.1", secured.client_port), timeout=10)
    with secured.trust.ssl_context(["h2", "http/1.1"]).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b'"health":"true"' in reply


@ETCDCTLS
def test_etcdctl_over_unix_sockets(mtls, binary):
    unixs, unix = mtls.unix_endpoints
    etcdctl_kv_and_watch(binary, unixs, mtls.trust, "unixs/k", cwd=mtls.cwd)
    plain = subprocess.run(
        [binary, "--endpoints", unix, "put", "unix/k", "plain"],
        capture_output=True, text=True, timeout=30, cwd=mtls.cwd, env={**os.environ, "ETCDCTL_API": "3"},
    )  # fmt: skip
    assert plain.stdout == "OK\n"
    assert etcdctl(binary, mtls.url, mtls.trust, "get", "unix/k", "--print-value-only").stdout == "plain\n"


# --- refusals -------------------------------------------------------------------------------------------


def refused(server: TlsMember, trust: Trust, via: str = "ssl") -> str:
    """Connects with ``trust`` (expecting a refusal) and returns the reason the member logged for it.
    ``via`` "ssl": one connection of Python's ssl; "grpc": a grpcio call, which retries until its deadline."""
    before = len(server.rejections())
    if via == "grpc":
        channel = grpc.secure_channel(server.endpoint, trust.grpc_credentials())
        with channel, pytest.raises(grpc.RpcError) as caught:
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"x"), timeout=3)
        assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        time.sleep(0.5)  # lets a retry in flight land before anyone counts rejections again
    else:
        raw = socket.create_connection(("127.0.0.1", server.client_port), timeout=10)
        try:
            with trust.ssl_context(["h2"]).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                assert sock.recv(1) == b""  # refused after the handshake: closed unanswered
        except (ssl.SSLError, ConnectionResetError):
            pass  # refused in the handshake
        finally:
            raw.close()
    return wait_for_rejection(server, before)


def wait_for_rejection(server: TlsMember, before: int) -> str:
    """The reason of the first rejection logged after the first ``before`` ones."""
    deadline = time.monotonic() + 5
    while len(server.rejections()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.rejections()[before]


@pytest.mark.parametrize("via", ["ssl", "grpc"])
def test_no_client_certificate_is_refused(mtls, pki, via):
    assert refused(mtls, Trust(pki.ca.path), via) == "tls: client didn't provide a certificate"


def revoked_reason(serial: int) -> str:
    """etcd prints the serial's big-endian bytes in hex, two digits each, so a leading zero nibble stays."""
    return f"transport: certificate serial {serial.to_bytes((serial.bit_length() + 7) // 8, 'big').hex()} revoked"


def test_revoked_certificate_is_refused(mtls, pki):
    reason = refused(mtls, Trust(pki.ca.path, pki.revoked.cert, pki.revoked.key))
    assert reason == revoked_reason(pki.revoked.serial)


def test_expired_certificate_is_refused(mtls, pki):
    reason = refused(mtls, Trust(pki.ca.path, pki.expired.cert, pki.expired.key))
    assert reason == "tls: failed to verify client certificate: x509: certificate has expired or is not yet valid"


def test_certificate_from_another_ca_is_refused(mtls, pki):
    reason = refused(mtls, Trust(pki.ca.path, pki.stranger.cert, pki.stranger.key))
    assert reason == "tls: failed to verify client certificate: x509: certificate signed by unknown authority"


def test_client_that_does_not_trust_the_server_ca(mtls, pki, tmp_path):
    other = CertAuthority(tmp_path, "client CA")
    before = len(mtls.rejections())
    raw = socket.create_connection(("127.0.0.1", mtls.client_port), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        Trust(other.path, pki.client.cert, pki.client.key).ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
    raw.close()
    assert wait_for_rejection(mtls, before) == (
        "tls: the client does not trust the CA of the server certificate (alert unknown ca)"
    )
    # grpc's BoringSSL hangs up without an alert
    reason = refused(mtls, Trust(other.path, pki.client.cert, pki.client.key), via="grpc")
    assert reason.startswith("tls: the client hung up during the handshake")


def test_etcdctl_without_a_client_certificate_fails(mtls, pki):
    out = etcdctl(ETCDCTL, mtls.url, Trust(pki.ca.path), "get", "k", check=False)
    assert out.returncode != 0 and out.stdout == ""


def test_auto_tls_certificates_name_the_listen_hosts_and_serve_both_ports(auto):
    for kind, port in (("client", auto.client_port), ("peer", auto.peer_port)):
        path = Path(auto.data_dir) / "fixtures" / kind / "cert.pem"
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=365)
        assert ssl.get_server_certificate(("127.0.0.1", port)) == path.read_text()


# --- the peer port ------------------------------------------------------------------------------------


def peer_handshake(server: TlsMember, ca: str, issued: Issued) -> bool:
    """True when the peer port completes a handshake with ``issued`` and keeps it past its checks (the member's
    transport then waits for peer frames, so a read that times out means the connection was kept)."""
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(issued.cert, issued.key)
    raw = socket.create_connection(("127.0.0.1", server.peer_port), timeout=10)
    try:
        with context.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False) as sock:
            sock.settimeout(5)
            with contextlib.suppress(TimeoutError):  # a timeout: kept open
                sock.recv(1)  # TLS 1.3 reports a refused client certificate on the first read
            return True
    except (ssl.SSLError, ConnectionResetError):
        return False


def test_peer_port_takes_the_allowed_cn_from_its_address_only(mtls, pki):
    before = len(mtls.rejections())
    assert peer_handshake(mtls, pki.ca.path, pki.peer)
    assert not peer_handshake(mtls, pki.ca.path, pki.client)  # CN "client"
    assert not peer_handshake(mtls, pki.ca.path, pki.revoked)
    assert not peer_handshake(mtls, pki.ca.path, pki.elsewhere)
    time.sleep(0.3)
    reasons = mtls.rejections()[before:]
    assert reasons[0].startswith("client certificate authentication failed: CommonName 'client'")
    assert reasons[1] == revoked_reason(pki.revoked.serial)
    assert reasons[2] == "x509: certificate is valid for 10.9.9.9, not 127.0.0.1"  # etcd's check of the address


def test_a_certificate_that_cannot_be_loaded_stops_the_member_at_startup(tmp_path, pki):
    server = member(tmp_path, ["--cert-file", str(tmp_path / "missing.pem"), "--key-file", pki.client.key], Trust(""))
    out = subprocess.run(server.argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 1
    assert "etcdx: cannot set up client TLS: [Errno 2] No such file or directory" in out.stderr


@pytest.fixture(scope="module")
def etcd_mtls(tmp_path_factory, pki):
    """Real etcd 3.5.1 with the mtls member's client TLS flags: the oracle for the refusal reasons."""
    tmp_path = tmp_path_factory.mktemp("etcd-mtls")
    server_cert = pki.ca.issue("etcd-server", "etcd server", ("127.0.0.1",), server=True, client=True)
    flags = ["--cert-file", server_cert.cert, "--key-file", server_cert.key, "--trusted-ca-file", pki.ca.path]
    flags += ["--client-cert-auth", "--client-crl-file", pki.crl]
    server = member(tmp_path, flags, Trust(pki.ca.path, pki.client.cert, pki.client.key))
    server.argv = [ETCD, *server.argv[3:]]
    with server.start():
        yield server


def test_refusal_reasons_are_etcds(mtls, etcd_mtls, pki):
    """The reason of each "rejected connection" line, as etcd 3.5.1 logs it (less the times it adds)."""
    cases = [Trust(pki.ca.path)] + [Trust(pki.ca.path, c.cert, c.key) for c in (pki.revoked, pki.expired, pki.stranger)]
    ours = [refused(mtls, trust) for trust in cases]
    theirs = [refused(etcd_mtls, trust).split(": current time")[0] for trust in cases]
    assert ours == theirs


def test_a_client_that_never_finishes_its_handshake_is_dropped_after_10s(mtls):
    before = len(mtls.rejections())
    with socket.create_connection(("127.0.0.1", mtls.client_port), timeout=30) as stalled:
        stalled.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then silence
        started = time.monotonic()
        assert stalled.recv(100) == b""
        waited = time.monotonic() - started
    assert 9.0 <= waited <= 15.0
    wait_for_rejection(mtls, before)
    assert "TLS handshake timed out" in mtls.rejections()[before:]


# --- read workers on TLS ports --------------------------------------------------------------------------


WORKER_CONNECTIONS = 12


def _worker_lines(server: TlsMember, message: str) -> list[dict]:
    with open(server.log_path, errors="replace") as f:
        return [json.loads(line) for line in f if line.startswith("{") and f'"msg":"{message}"' in line]


def _channels(server: TlsMember, trust: Trust) -> list[grpc.Channel]:
    """Connections of their own (grpcio shares subchannels between channels unless told not to), so they spread
    over the member and its workers."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    credentials = trust.grpc_credentials()
    return [grpc.secure_channel(server.endpoint, credentials, options=options) for _ in range(WORKER_CONNECTIONS)]


def _code(method, request, **kwargs) -> grpc.StatusCode:
    try:
        method(request, timeout=10, **kwargs)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_read_workers_serve_tls_and_pass_the_client_certificates_identity_on(tmp_path, pki):
    """--experimental-read-workers with https:// and --client-cert-auth: the workers share the TLS port, check
    client certificates as the member does, serve Range, and pass the certificate's CN on with what they relay
    (etcd's user for certificate auth). A client cannot claim another CN through the metadata a worker forwards."""
    from etcdx.pb.authpb import auth_pb2

    server_cert = pki.ca.issue("workers-server", "etcdx server", ("127.0.0.1", "localhost"), server=True, client=False)
    root, alice = pki.ca.issue("worker-root", "root"), pki.ca.issue("worker-alice", "alice")
    flags = ["--cert-file", server_cert.cert, "--key-file", server_cert.key, "--trusted-ca-file", pki.ca.path]
    flags += ["--client-cert-auth", "--experimental-read-workers", "2"]
    server = member(tmp_path, flags, Trust(pki.ca.path, root.cert, root.key))
    as_root, as_alice = Trust(pki.ca.path, root.cert, root.key), Trust(pki.ca.path, alice.cert, alice.key)
    with server.start():
        deadline = time.monotonic() + 30
        while len(_worker_lines(server, "read worker ready")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        channels = _channels(server, as_alice)
        try:
            first = rpc_pb2_grpc.KVStub(channels[0])
            first.Put(rpc_pb2.PutRequest(key=b"a/x", value=b"1"), timeout=10)
            first.Put(rpc_pb2.PutRequest(key=b"b/x", value=b"2"), timeout=10)
            for c in channels:  # before auth: served by whichever process took the connection
                for serializable in (True, False):
                    got = rpc_pb2_grpc.KVStub(c).Range(rpc_pb2.RangeRequest(key=b"a/x", serializable=serializable))
                    assert [kv.value for kv in got.kvs] == [b"1"]
            with grpc.secure_channel(server.endpoint, as_root.grpc_credentials()) as admin:
                auth = rpc_pb2_grpc.AuthStub(admin)
                auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="secret"), timeout=10)
                auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
                auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="reader"), timeout=10)
                read_a = auth_pb2.Permission(permType=auth_pb2.Permission.READ, key=b"a/", range_end=b"a0")
                auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="reader", perm=read_a))
                auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="alice", password="pw"), timeout=10)
                auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="reader"), timeout=10)
                auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)
            claim_root = [("etcdx-forwarded-client-cn", "root")]
            for c in channels:
                kv = rpc_pb2_grpc.KVStub(c)
                for serializable in (True, False):
                    got = kv.Range(rpc_pb2.RangeRequest(key=b"a/x", serializable=serializable), timeout=10)
                    assert [v.value for v in got.kvs] == [b"1"]
                    denied = rpc_pb2.RangeRequest(key=b"b/x", serializable=serializable)
                    assert _code(kv.Range, denied) == grpc.StatusCode.PERMISSION_DENIED
                    assert _code(kv.Range, denied, metadata=claim_root) == grpc.StatusCode.PERMISSION_DENIED
                put = rpc_pb2.PutRequest(key=b"a/x", value=b"3")
                assert _code(kv.Put, put) == grpc.StatusCode.PERMISSION_DENIED
                assert _code(kv.Put, put, metadata=claim_root) == grpc.StatusCode.PERMISSION_DENIED
        finally:
            for c in channels:
                c.close()
        for c in _channels(server, as_root):  # root's certificate: its writes are root's through any process
            with c:
                rpc_pb2_grpc.KVStub(c).Put(rpc_pb2.PutRequest(key=b"b/x", value=b"root"), timeout=10)
        context = as_alice.ssl_context()
        for _ in range(WORKER_CONNECTIONS):  # HTTP/1.1 on the TLS port, whichever process takes it
            raw = socket.create_connection(("127.0.0.1", server.client_port), timeout=10)
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200"), answer
        server.stop()
    counts = _worker_lines(server, "read worker stopped")
    assert len(counts) == 2, counts
    assert sum(line["local_ranges"] for line in counts) > 0, counts  # before auth
    assert sum(line["relayed_ranges"] for line in counts) > 0, counts  # with auth: the member checks the CN
