"""etcd's TLS flag values -> the `ssl` module's: Go cipher suite names and TLS version names.

Go names cipher suites by their IANA names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); OpenSSL by its own
(ECDHE-RSA-AES128-GCM-SHA256). The TLS 1.3 suites are accepted, as Go accepts them, and change nothing:
neither Go nor OpenSSL's cipher list configures TLS 1.3.
"""

from __future__ import annotations

import ssl

_GO_TO_OPENSSL = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
_TLS13_SUITES = frozenset(["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"])
_VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}


class TlsFlagError(ValueError):
    """A TLS flag value etcd refuses; the message is etcd's."""


def openssl_ciphers(go_names: tuple[str, ...]) -> str:
    """The OpenSSL cipher list for ``go_names`` ("" when none is given: OpenSSL's defaults)."""
    names = []
    for name in go_names:
        if name in _GO_TO_OPENSSL:
            names.append(_GO_TO_OPENSSL[name])
        elif name not in _TLS13_SUITES:
            raise TlsFlagError(f'unexpected TLS cipher suite "{name}"')
    return ":".join(names)


def tls_version(flag: str, value: str, default: ssl.TLSVersion) -> ssl.TLSVersion:
    """``value`` of --tls-min-version / --tls-max-version ("" is ``default``)."""
    if not value:
        return default
    if value not in _VERSIONS:
        raise TlsFlagError(f'--{flag}: unexpected TLS version "{value}" (must be one of: TLS1.2, TLS1.3)')
    return _VERSIONS[value]


def version_range(min_flag: str, max_flag: str, ciphers: tuple[str, ...]) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """(minimum, maximum) from the two flags' values, with etcd's defaults (TLS 1.2 up to the newest) and
    checks: the minimum may not exceed the maximum, and cipher suites make no sense with TLS 1.3 only."""
    low = tls_version("tls-min-version", min_flag, ssl.TLSVersion.TLSv1_2)
    high = tls_version("tls-max-version", max_flag, ssl.TLSVersion.MAXIMUM_SUPPORTED)
    if high != ssl.TLSVersion.MAXIMUM_SUPPORTED and low > high:
        raise TlsFlagError(f"min version ({min_flag}) is greater than max version ({max_flag})")
    if ciphers and low == ssl.TLSVersion.TLSv1_3:
        raise TlsFlagError("cipher suites cannot be configured when only TLS1.3 is enabled")
    return low, high
