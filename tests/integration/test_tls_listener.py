"""The TLS listener in this process (real sockets on loopback, real certificate files): what needs short
limits or files changed under a running listener. A client that never finishes its handshake is cut at
the handshake timeout and holds no connection slot; certificates and CRLs rotated on disk are used from
the next connection; version, cipher-suite and host-name rules refuse what they should, with a log line."""

from __future__ import annotations

import random
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import trio
from cryptography import x509

from etcdx.net import cert_checks
from etcdx.net.conn_limits import ConnectionLimits
from etcdx.net.grpc_server import UnaryMethod
from etcdx.net.http1 import HttpRequest, HttpResponse
from etcdx.net.listener import serve_client_port
from etcdx.net.tls import ServerTls, TlsSettings
from etcdx.net.tls_versions import openssl_ciphers
from tests.support.tls_certs import CertAuthority, Issued

SHORT = ConnectionLimits(handshake_timeout=0.5, max_connections=1)


async def answer(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, [("content-type", "text/plain")], b"ok")


async def who(request: bytes, ctx) -> bytes:
    return ctx.peer_common_name.encode()


async def start(nursery, tls: ServerTls, limits: ConnectionLimits = SHORT) -> int:
    return await nursery.start(
        lambda task_status: serve_client_port(
            "127.0.0.1",
            0,
            resolve=lambda path: UnaryMethod(who) if path == "/t.S/Who" else None,
            known_services=frozenset({"t.S"}),
            http_handler=answer,
            max_recv_message_bytes=1024 * 1024,
            limits=limits,
            tls=tls,
            task_status=task_status,
        )
    )


@pytest.fixture
def ca(tmp_path) -> CertAuthority:
    return CertAuthority(tmp_path)


@pytest.fixture
def server_cert(ca) -> Issued:
    return ca.issue("server", "server", ("127.0.0.1",), server=True, client=False)


def client_context(ca: CertAuthority, issued: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca.path)
    if issued is not None:
        context.load_cert_chain(issued.cert, issued.key)
    return context


@dataclass
class Reply:
    body: bytes
    server_serial: int
    cipher: str


async def get(port: int, context: ssl.SSLContext) -> Reply:
    """GET / over TLS; raises trio.BrokenResourceError when the handshake fails."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1", https_compatible=True)
    body = b""
    with trio.fail_after(10):
        async with stream:
            await stream.do_handshake()
            cert = x509.load_der_x509_certificate(stream.getpeercert(binary_form=True))
            cipher = stream.cipher()[0]
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while data := await stream.receive_some(65536):
                body += data
    return Reply(body, cert.serial_number, cipher)


async def served(port: int, context: ssl.SSLContext) -> bool:
    """True when GET / is answered 200; False when the handshake fails or the server hangs up after it
    (a certificate refused by a check after the handshake: CRL, CN, host name)."""
    try:
        return (await get(port, context)).body.startswith(b"HTTP/1.1 200")
    except trio.BrokenResourceError:
        return False


def rejections(caplog) -> list[str]:
    return [r.fields["error"] for r in caplog.records if r.getMessage() == "rejected connection"]


async def test_a_client_that_never_finishes_its_handshake_is_dropped_at_the_timeout(nursery, ca, server_cert, caplog):
    port = await start(nursery, ServerTls(TlsSettings(server_cert.cert, server_cert.key)))
    async with await trio.open_tcp_stream("127.0.0.1", port) as stalled:
        await stalled.send_all(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then silence
        started = trio.current_time()
        with trio.fail_after(5):
            assert await stalled.receive_some(100) == b""  # closed unanswered
        assert trio.current_time() - started >= 0.4
    assert rejections(caplog) == ["TLS handshake timed out"]
    assert await served(port, client_context(ca))


async def test_a_stalled_handshake_holds_no_slot(nursery, ca, server_cert):
    limits = ConnectionLimits(handshake_timeout=30.0, max_connections=1)
    port = await start(nursery, ServerTls(TlsSettings(server_cert.cert, server_cert.key)), limits)
    async with await trio.open_tcp_stream("127.0.0.1", port) as stalled:
        await stalled.send_all(b"\x16\x03\x01\x02\x00\x01")
        await trio.sleep(0.2)
        # The only slot is held by the stalled handshake, which is idle: a real client takes it ...
        assert await served(port, client_context(ca))
        # ... and the stalled connection is closed, long before its handshake timeout.
        with trio.fail_after(5):
            assert await stalled.receive_some(100) == b""


async def test_a_certificate_rotated_on_disk_is_used_by_the_next_connection(nursery, ca, server_cert, tmp_path):
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live-key.pem"
    shutil.copy(server_cert.cert, live_cert)
    shutil.copy(server_cert.key, live_key)
    port = await start(nursery, ServerTls(TlsSettings(str(live_cert), str(live_key))))
    assert (await get(port, client_context(ca))).server_serial == server_cert.serial
    renewed = ca.issue("renewed", "server", ("127.0.0.1",), server=True, client=False)
    for source, target in ((renewed.key, live_key), (renewed.cert, live_cert)):
        Path(f"{target}.new").write_bytes(Path(source).read_bytes())
        Path(f"{target}.new").rename(target)  # as cert-manager and friends do: atomic replacement
    assert (await get(port, client_context(ca))).server_serial == renewed.serial


async def test_a_crl_updated_on_disk_refuses_the_next_connection(nursery, ca, server_cert, tmp_path, caplog):
    client = ca.issue("client")
    crl = ca.crl("crl", [], der=True)
    settings = TlsSettings(server_cert.cert, server_cert.key, ca.path, client_cert_auth=True, crl_file=crl)
    port = await start(nursery, ServerTls(settings))
    assert await served(port, client_context(ca, client))
    ca.crl("crl", [client], der=True)
    assert not await served(port, client_context(ca, client))
    serial = client.serial.to_bytes((client.serial.bit_length() + 7) // 8, "big").hex()  # as etcd prints it
    assert rejections(caplog) == [f"transport: certificate serial {serial} revoked"]


async def test_tls_below_the_minimum_version_is_refused(nursery, ca, server_cert, caplog):
    settings = TlsSettings(server_cert.cert, server_cert.key, min_version=ssl.TLSVersion.TLSv1_3)
    port = await start(nursery, ServerTls(settings))
    old = client_context(ca)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    assert not await served(port, old)
    assert rejections(caplog) == ["tls: client offered only unsupported versions"]
    assert await served(port, client_context(ca))


async def test_cipher_suites_limit_tls12(nursery, ca, server_cert):
    ciphers = openssl_ciphers(("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",))
    settings = TlsSettings(server_cert.cert, server_cert.key, ciphers=ciphers)
    port = await start(nursery, ServerTls(settings))
    context = client_context(ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert (await get(port, context)).cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"
    context.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    assert not await served(port, context)


@pytest.mark.parametrize(
    ("sans", "allowed", "passes"),
    [
        (("node1.example.com",), "node1.example.com", True),
        (("*.example.com",), "node1.example.com", True),
        (("*.example.com",), "a.b.example.com", False),
        (("*.example.com",), "example.com", False),
        (("127.0.0.1",), "127.0.0.1", True),
        (("127.0.0.2",), "127.0.0.1", False),
        (("other.org",), "node1.example.com", False),
    ],
)
async def test_allowed_hostname_is_matched_against_the_client_sans(nursery, ca, server_cert, sans, allowed, passes):
    client = ca.issue("client", "client", sans)
    settings = TlsSettings(server_cert.cert, server_cert.key, ca.path, client_cert_auth=True, allowed_hostname=allowed)
    port = await start(nursery, ServerTls(settings))
    assert await served(port, client_context(ca, client)) == passes


def test_bad_files_fail_at_construction(ca, server_cert, tmp_path):
    with pytest.raises(FileNotFoundError):
        ServerTls(TlsSettings(str(tmp_path / "missing.pem"), server_cert.key))
    other = ca.issue("other", server=True)
    with pytest.raises(ssl.SSLError):
        ServerTls(TlsSettings(server_cert.cert, other.key))  # a key that is not the certificate's
    garbage = tmp_path / "garbage.crl"
    garbage.write_bytes(b"not a crl")
    with pytest.raises(ValueError):
        ServerTls(TlsSettings(server_cert.cert, server_cert.key, crl_file=str(garbage)))


def test_revoked_serials_read_pem_and_der(ca):
    issued = ca.issue("c")
    for der in (False, True):
        path = ca.crl(f"crl-{der}", [issued], der=der)
        assert cert_checks.load_revoked_serials(Path(path).read_bytes()) == {issued.serial}


@pytest.mark.parametrize(
    ("sans", "reason"),
    [
        ((), None),
        (("127.0.0.1",), None),
        (("localhost",), None),
        (("10.9.9.9",), "x509: certificate is valid for 10.9.9.9, not 127.0.0.1"),
        (
            ("10.9.9.9", "no-such-host.invalid"),
            'tls: "127.0.0.1" does not match any of DNSNames ["no-such-host.invalid"]',
        ),
    ],
)
async def test_peer_certificates_must_name_the_address_they_connect_from(
    nursery, ca, server_cert, caplog, sans, reason
):
    peer = ca.issue("peer", "peer", sans)
    settings = TlsSettings(server_cert.cert, server_cert.key, ca.path, client_cert_auth=True, verify_client_san=True)
    port = await start(nursery, ServerTls(settings))
    assert await served(port, client_context(ca, peer)) == (reason is None)
    assert rejections(caplog) == ([reason] if reason else [])


@pytest.mark.parametrize(("client_auth", "present", "expected"), [(True, True, b"alice"), (False, False, b"")])
async def test_grpc_handlers_see_the_verified_client_common_name(
    nursery, ca, server_cert, client_auth, present, expected
):
    alice = ca.issue("alice", "alice")
    settings = TlsSettings(server_cert.cert, server_cert.key, ca.path if client_auth else "", client_auth)
    port = await start(nursery, ServerTls(settings))
    read = lambda path: Path(path).read_bytes()  # noqa: E731
    credentials = grpc.ssl_channel_credentials(
        read(ca.path), read(alice.key) if present else None, read(alice.cert) if present else None
    )

    def call() -> bytes:
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
            return channel.unary_unary("/t.S/Who")(b"", timeout=5)

    assert await trio.to_thread.run_sync(call) == expected


async def test_garbage_and_plain_http_on_a_tls_port_are_refused_and_the_port_serves_on(
    nursery, ca, server_cert, caplog
):
    limits = ConnectionLimits(handshake_timeout=0.5)
    port = await start(nursery, ServerTls(TlsSettings(server_cert.cert, server_cert.key)), limits)
    rng = random.Random(11)
    attempts = [b"\x16\x03\x03" + rng.randbytes(rng.randrange(2, 300)) for _ in range(30)]
    attempts += [rng.randbytes(rng.randrange(1, 300)) for _ in range(30)]

    async def attempt(data: bytes) -> None:
        async with await trio.open_tcp_stream("127.0.0.1", port) as sock:
            await sock.send_all(data)
            with trio.fail_after(5):
                try:
                    while await sock.receive_some(65536):
                        pass  # an alert, then the close
                except trio.BrokenResourceError:
                    pass

    await attempt(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    async with trio.open_nursery() as attackers:
        for data in attempts:
            attackers.start_soon(attempt, data)
    assert await served(port, client_context(ca))
    reasons = rejections(caplog)
    assert reasons[0] == "tls: first record does not look like a TLS handshake (plain HTTP)"
    assert len(reasons) == 1 + len(attempts)
