"""Endpoints and TLS of `etcdx bench`, after etcd's benchmark flags (--cacert, --cert, --key,
--insecure-skip-tls-verify): an ssl.SSLContext for the native client, channel credentials for grpcio."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    secure: bool

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsOptions:
    cacert: str = ""  # verify the server against this CA bundle (else the system's roots)
    cert: str = ""  # our client certificate, for servers that ask for one
    key: str = ""
    insecure_skip_verify: bool = False  # no verification of the server's certificate or name

    @property
    def given(self) -> bool:
        return bool(self.cacert or self.cert or self.key or self.insecure_skip_verify)


def parse_endpoints(spec: str, tls: TlsOptions) -> list[Endpoint]:
    """``host:port`` items, comma-separated; ``https://`` means TLS, ``http://`` plain, and a bare
    host:port is TLS when any TLS flag is given."""
    endpoints = []
    for item in (e.strip() for e in spec.split(",")):
        if not item:
            continue
        secure = tls.given
        if item.startswith("https://"):
            item, secure = item.removeprefix("https://"), True
        elif item.startswith("http://"):
            item, secure = item.removeprefix("http://"), False
        host, colon, port = item.rstrip("/").rpartition(":")
        if not colon or not port.isdigit():
            raise ValueError(f"endpoint {item!r} is not host:port")
        endpoints.append(Endpoint(host.strip("[]"), int(port), secure))
    if not endpoints:
        raise ValueError("no endpoints")
    return endpoints


def ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    """A client context offering ALPN "h2"."""
    context = ssl.create_default_context(cafile=tls.cacert or None)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert:
        context.load_cert_chain(tls.cert, tls.key or None)
    context.set_alpn_protocols(["h2"])
    return context


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def _peer_certificate(endpoint: Endpoint, context: ssl.SSLContext, binary: bool):
    with (
        socket.create_connection((endpoint.host, endpoint.port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=endpoint.host) as tls_sock,
    ):
        return tls_sock.getpeercert(binary_form=binary)


def _presented_certificate(endpoint: Endpoint, tls: TlsOptions) -> tuple[bytes, str | None]:
    """The server's certificate (PEM) as it presents it, unverified, and a name it is valid for."""
    unverified = ssl_context(TlsOptions(cert=tls.cert, key=tls.key, insecure_skip_verify=True))
    pem = ssl.DER_cert_to_PEM_cert(_peer_certificate(endpoint, unverified, True))
    # ssl decodes a peer certificate only once verified: verify it against itself alone (a partial chain)
    pinned = ssl.create_default_context(cadata=pem)
    pinned.check_hostname = False
    pinned.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if tls.cert:
        pinned.load_cert_chain(tls.cert, tls.key or None)
    try:
        decoded = _peer_certificate(endpoint, pinned, False)
    except ssl.SSLError:  # e.g. expired: grpcio will refuse it anyway, with its own message
        return pem.encode(), None
    names = [value for kind, value in decoded.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    names += [value for rdn in decoded.get("subject", ()) for key, value in rdn if key == "commonName"]
    return pem.encode(), (names[0] if names else None)


def grpc_channel_args(endpoint: Endpoint, tls: TlsOptions):
    """(credentials, extra channel options) for a grpcio secure channel to ``endpoint``.

    grpcio cannot switch verification off; --insecure-skip-tls-verify is emulated by trusting the
    certificate the server presents (fetched unverified just before) under a name it carries.
    """
    import grpc

    key, cert = _read(tls.key), _read(tls.cert)
    if tls.insecure_skip_verify:
        try:
            root, name = _presented_certificate(endpoint, tls)
        except OSError:  # unreachable now: the channel's own attempts fail and are counted
            return grpc.ssl_channel_credentials(None, key, cert), []
        options = [("grpc.ssl_target_name_override", name)] if name else []
        return grpc.ssl_channel_credentials(root, key, cert), options
    return grpc.ssl_channel_credentials(_read(tls.cacert), key, cert), []
