"""The client side of TLS for outbound peer connections, from the same peer TLS settings the listener uses.

As etcd's peer transport: the peer certificate and key (--peer-cert-file/--peer-key-file) are also this
member's client certificate; the other member's certificate is verified against --peer-trusted-ca-file
and the URL's host (IP SAN or DNS name). With --peer-auto-tls and no trusted CA, the other member's
self-signed certificate cannot be verified, so it is not (etcd sets InsecureSkipVerify then); with neither,
the system's CAs are used. The context is built once: a member reconnecting after a certificate rotation
uses the files as they were when the transport was made.
"""

from __future__ import annotations

import ssl

from etcdx.net.tls import TlsSettings


def peer_client_context(settings: TlsSettings, *, auto_tls: bool = False) -> ssl.SSLContext:
    """Raises OSError or ssl.SSLError for files that cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = settings.min_version
    context.maximum_version = settings.max_version
    if settings.ciphers:
        context.set_ciphers(settings.ciphers)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    if settings.trusted_ca_file:
        context.load_verify_locations(cafile=settings.trusted_ca_file)
    elif auto_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return context
