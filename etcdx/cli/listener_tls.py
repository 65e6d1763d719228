"""Config -> the TLS of the client and peer listeners (net/tls.py), as etcd sets them up at startup.

A port's certificate comes from its --cert-file/--key-file flags; with none and --auto-tls, from a
self-signed pair in <data-dir>/fixtures/client (or .../peer) naming the hosts of the listen URLs. Every
file is loaded once here, so a certificate, key, CA or CRL that cannot be loaded stops the member before
it listens; afterwards each new connection picks up changed files.
"""

from __future__ import annotations

import os
import ssl

from etcdx.config import Config, TlsFlags, Url, is_secure
from etcdx.log import get_logger
from etcdx.net.listener import ListenAddress
from etcdx.net.self_cert import self_signed_cert
from etcdx.net.tls import ServerTls, TlsSettings
from etcdx.net.tls_versions import openssl_ciphers, version_range

log = get_logger("etcdx.cli")


class TlsSetupError(Exception):
    """TLS files that cannot be used; the message says which and why."""


def client_addresses(config: Config) -> list[ListenAddress]:
    tls = _server_tls(config, config.client_tls, config.listen_client_urls, "client")
    return [_address(url, tls, config.socket_reuse_port) for url in config.listen_client_urls]


def metrics_addresses(config: Config) -> list[ListenAddress]:
    """--listen-metrics-urls: an https:// one uses the client TLS settings, as etcd's metrics listeners do."""
    tls = _server_tls(config, config.client_tls, config.listen_metrics_urls, "client")
    return [_address(url, tls, config.socket_reuse_port) for url in config.listen_metrics_urls]


def peer_addresses(config: Config) -> list[ListenAddress]:
    tls = _server_tls(config, config.peer_tls, config.listen_peer_urls, "peer")
    return [_address(url, tls, config.socket_reuse_port) for url in config.listen_peer_urls]


def _address(url: Url, tls: ServerTls | None, reuse_port: bool) -> ListenAddress:
    unix = url.scheme in ("unix", "unixs")
    return ListenAddress(url.host, url.port, tls=tls if is_secure(url) else None, unix=unix, reuse_port=reuse_port)


def _server_tls(config: Config, flags: TlsFlags, urls: tuple[Url, ...], kind: str) -> ServerTls | None:
    if not any(is_secure(url) for url in urls):
        return None
    cert_file, key_file = flags.cert_file, flags.key_file
    if flags.auto_tls and flags.has_cert:
        log.warning(f"ignoring {kind} auto TLS since certs given")
    elif flags.auto_tls:
        directory = os.path.join(config.data_dir, "fixtures", kind)
        cert_file, key_file = self_signed_cert(
            directory, tuple(url.host for url in urls), config.self_signed_cert_validity
        )
    low, high = version_range(config.tls_min_version, config.tls_max_version, config.cipher_suites)
    settings = TlsSettings(
        cert_file=cert_file,
        key_file=key_file,
        trusted_ca_file=flags.trusted_ca_file,
        client_cert_auth=flags.client_cert_auth,
        crl_file=flags.crl_file,
        allowed_cn=flags.allowed_cn,
        allowed_hostname=flags.allowed_hostname,
        ciphers=openssl_ciphers(config.cipher_suites),
        min_version=low,
        max_version=high,
        verify_client_san=kind == "peer" and not flags.skip_client_san_verification,
    )
    try:
        return ServerTls(settings)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise TlsSetupError(f"cannot set up {kind} TLS: {exc}") from None
