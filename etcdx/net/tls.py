"""TLS on a listener: the server side of every handshake, with certificates read from disk as they are now.

Contracts:
- Rotation without restart: every new connection stats the certificate, key, CA and CRL files; when any of
  them changed (size, mtime or inode) the context is built anew from the files, so the next connection
  uses the new certificate. Established connections keep the one they were made with. A file that cannot
  be loaded (say, half-written) refuses the connections that meet it, and the next connection tries again.
- Client certificates: --client-cert-auth or a trusted CA file demands one signed by that CA (etcd's
  RequireAndVerifyClientCert for either); then a CRL, an allowed CN and an allowed host name, each when
  set, must pass (net/cert_checks.py).
- ALPN: a client offering h2 only (every gRPC client) gets h2; one offering http/1.1 too (curl, browsers)
  gets http/1.1, because the HTTP/2 side of the port serves gRPC only (the server's order decides). The
  connection's first bytes choose the protocol either way.
- TLS 1.2 is the lowest version by default, as etcd's.
- The whole handshake (and, on the peer port, the resolution of the peer certificate's DNS names for
  etcd's address check) must finish before the deadline the caller gives; a refused or unfinished
  handshake is logged ("rejected connection", with the reason) and closed, and never raises.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

import trio
from cryptography import x509

from etcdx.log import get_logger
from etcdx.net import cert_checks
from etcdx.net.sockets import remote_address

log = get_logger("etcdx.net")

ALPN_PROTOCOLS = ("http/1.1", "h2")  # the server's preference order


@dataclass(frozen=True)
class TlsSettings:
    """One listener's TLS: file paths as given, and what a peer certificate must satisfy."""

    cert_file: str
    key_file: str
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    crl_file: str = ""
    allowed_cn: str = ""
    allowed_hostname: str = ""
    ciphers: str = ""  # OpenSSL cipher list for TLS 1.2 and older ("" is OpenSSL's default)
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    # The peer port's check: a client certificate's SANs must name the address it connects from.
    verify_client_san: bool = False

    @property
    def requires_client_cert(self) -> bool:
        return self.client_cert_auth or bool(self.trusted_ca_file)


def _stamp(path: str) -> tuple[int, int, int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ServerTls:
    """The server side of TLS for one listener. Constructing it loads every file once, so a bad
    certificate, key, CA or CRL stops the member at startup (as etcd) with the error raised here."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._stamps: tuple | None = None
        self._context: ssl.SSLContext | None = None
        self._revoked: frozenset[int] = frozenset()
        self._reload()

    def _files_stamp(self) -> tuple:
        s = self.settings
        return tuple(_stamp(p) for p in (s.cert_file, s.key_file, s.trusted_ca_file, s.crl_file))

    def _reload(self) -> None:
        stamps = self._files_stamp()
        s = self.settings
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = s.min_version
        context.maximum_version = s.max_version
        if s.ciphers:
            context.set_ciphers(s.ciphers)
        context.load_cert_chain(s.cert_file, s.key_file)
        if s.trusted_ca_file:
            context.load_verify_locations(cafile=s.trusted_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if s.requires_client_cert else ssl.CERT_NONE
        context.set_alpn_protocols(list(ALPN_PROTOCOLS))
        revoked: frozenset[int] = frozenset()
        if s.crl_file:
            with open(s.crl_file, "rb") as f:
                revoked = cert_checks.load_revoked_serials(f.read())
        self._context, self._revoked, self._stamps = context, revoked, stamps

    def context(self) -> ssl.SSLContext:
        """The context for a new connection, rebuilt first if a file changed since the last one."""
        if self._files_stamp() != self._stamps:
            self._reload()
        return self._context

    def refusal(self, peer_der: bytes | None) -> str | None:
        """Why the peer's certificate (DER, None if it sent none) is refused after a good handshake."""
        s = self.settings
        if peer_der is None:
            if s.allowed_cn or s.allowed_hostname:
                return "client certificate authentication failed: no client certificate"
            return None
        cert = x509.load_der_x509_certificate(peer_der)
        reason = cert_checks.revoked(cert, self._revoked) if self._revoked else None
        if reason is None and s.allowed_cn:
            reason = cert_checks.cn_mismatch(cert, s.allowed_cn)
        if reason is None and s.allowed_hostname:
            reason = cert_checks.hostname_mismatch(cert, s.allowed_hostname)
        return reason

    def _checked_refusal(self, peer_der: bytes | None) -> str | None:
        try:
            return self.refusal(peer_der)
        except Exception as exc:  # a certificate OpenSSL took that cryptography cannot read
            return f"cannot read the client certificate: {exc!r}"

    async def accept(
        self, stream: trio.SocketStream, *, deadline: float, https_compatible: bool = True
    ) -> trio.SSLStream | None:
        """The TLS stream over ``stream`` once the handshake finished and the peer's certificate passed;
        None (``stream`` closed, the reason logged) otherwise. ``https_compatible`` as trio's SSLStream
        (True: neither side's close_notify is needed, as HTTP clients expect). Cancelled (say, evicted by
        the connection cap), it closes ``stream`` before the cancellation goes on."""
        remote = remote_address(stream)
        try:
            context = self.context()
        except (OSError, ValueError, ssl.SSLError) as exc:
            return await _reject(stream, remote, f"cannot load TLS files: {exc}")
        tls_stream = trio.SSLStream(stream, context, server_side=True, https_compatible=https_compatible)
        reason = "TLS handshake timed out"
        try:
            with trio.move_on_at(deadline):
                try:
                    await tls_stream.do_handshake()
                    reason = None
                except trio.BrokenResourceError as exc:
                    reason = _describe(exc.__cause__)
                except Exception as exc:  # nothing a client sends may end the listener
                    reason = f"tls: unexpected handshake failure: {exc!r}"
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        if reason is None:
            reason = self._checked_refusal(tls_stream.getpeercert(binary_form=True))
        if reason is None and self.settings.verify_client_san:
            reason = "timed out resolving the DNS names of the peer certificate"
            with trio.move_on_at(deadline):
                reason = await _remote_refusal(tls_stream.getpeercert(binary_form=True), remote)
        if reason is not None:
            # Closing the socket under the TLS stream sends no close_notify: the peer sees the refusal.
            return await _reject(stream, remote, reason)
        return tls_stream


async def _remote_refusal(peer_der: bytes | None, remote: str) -> str | None:
    if peer_der is None or ":" not in remote:
        return None
    cert = x509.load_der_x509_certificate(peer_der)
    remote_ip = remote.rsplit(":", 1)[0]
    if cert_checks.remote_mismatch(cert, remote_ip, {}) is None:
        return None
    resolved: dict[str, set[str]] = {}
    for name in cert_checks.san_names(cert)[1]:
        try:
            infos = await trio.socket.getaddrinfo(name, None)
        except (OSError, UnicodeError):  # unresolvable, or not a host name at all
            continue
        resolved[name] = {info[4][0] for info in infos}
    return cert_checks.remote_mismatch(cert, remote_ip, resolved)


async def _reject(stream: trio.abc.Stream, remote: str, reason: str) -> None:
    log.warning("rejected connection", **{"remote-addr": remote, "error": reason})
    await trio.aclose_forcefully(stream)
    return None


# OpenSSL's reason codes for the common refusals -> the words etcd (Go) logs for them.
_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "tls: client didn't provide a certificate",
    "UNEXPECTED_EOF_WHILE_READING": "tls: the client hung up during the handshake (it may not trust the server"
    " certificate)",
    "TLSV1_ALERT_UNKNOWN_CA": "tls: the client does not trust the CA of the server certificate (alert unknown ca)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "tls: the client refused the server certificate (alert bad certificate)",
    "UNSUPPORTED_PROTOCOL": "tls: client offered only unsupported versions",
    "NO_SHARED_CIPHER": "tls: no cipher suite supported by both client and server",
    "WRONG_VERSION_NUMBER": "tls: first record does not look like a TLS handshake",
    "HTTP_REQUEST": "tls: first record does not look like a TLS handshake (plain HTTP)",
}


# OpenSSL's verify codes -> Go's x509 words for the same failure.
_VERIFY_CODES = {
    2: "x509: certificate signed by unknown authority",  # unable to get issuer certificate
    9: "x509: certificate has expired or is not yet valid",
    10: "x509: certificate has expired or is not yet valid",
    18: "x509: certificate signed by unknown authority",  # self-signed leaf
    19: "x509: certificate signed by unknown authority",  # self-signed root not trusted
    20: "x509: certificate signed by unknown authority",  # unable to get local issuer certificate
    21: "x509: certificate signed by unknown authority",  # unable to verify the first certificate
    26: "x509: certificate specifies an incompatible key usage",  # unsuitable purpose
}


def _describe(error: BaseException | None) -> str:
    """A log line's reason from what broke a handshake."""
    if isinstance(error, ssl.SSLCertVerificationError):
        words = _VERIFY_CODES.get(error.verify_code, error.verify_message)
        return f"tls: failed to verify client certificate: {words}"
    if isinstance(error, ssl.SSLError) and error.reason in _REASONS:
        return _REASONS[error.reason]
    if isinstance(error, ssl.SSLError):
        text = error.args[1] if len(error.args) > 1 else str(error)
        return f"tls: {str(text).split(' (_ssl.c', 1)[0]}"
    if error is None:
        return "tls: the client closed the connection during the handshake"
    return f"tls: {error}"
