"""Checks on a peer's certificate that the TLS library does not make: revocation by a CRL file, an
exact Common Name, a host name among its subject alternative names.

Each check returns None when the certificate passes, or the reason it is refused (logged, never sent).
"""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID


def load_revoked_serials(crl_bytes: bytes) -> frozenset[int]:
    """The serial numbers a CRL revokes, from its PEM or DER encoding (as etcd reads --client-crl-file);
    raises ValueError for anything else."""
    load = x509.load_pem_x509_crl if b"-----BEGIN" in crl_bytes else x509.load_der_x509_crl
    crl = load(crl_bytes)
    return frozenset(entry.serial_number for entry in crl)


def revoked(cert: x509.Certificate, serials: frozenset[int]) -> str | None:
    serial = cert.serial_number
    if serial in serials:
        # etcd formats the serial's big-endian bytes, two hex digits each (a leading zero stays).
        return f"transport: certificate serial {serial.to_bytes((serial.bit_length() + 7) // 8, 'big').hex()} revoked"
    return None


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def cn_mismatch(cert: x509.Certificate, allowed_cn: str) -> str | None:
    cn = common_name(cert)
    if cn != allowed_cn:
        return f"client certificate authentication failed: CommonName {cn!r} is not the allowed {allowed_cn!r}"
    return None


def hostname_mismatch(cert: x509.Certificate, hostname: str) -> str | None:
    """Go's x509 VerifyHostname: an IP address must be among the IP SANs; a name must match a DNS SAN,
    where "*." matches exactly one leftmost label. The Common Name is not consulted (Go ignores it)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
    if address is not None:
        if address in sans.get_values_for_type(x509.IPAddress):
            return None
    elif any(_name_matches(pattern, hostname) for pattern in sans.get_values_for_type(x509.DNSName)):
        return None
    return f"client certificate authentication failed: certificate is not valid for host {hostname!r}"


def san_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(IP addresses, DNS names) of the certificate's subject alternative names."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)], sans.get_values_for_type(x509.DNSName)


def remote_mismatch(cert: x509.Certificate, remote_ip: str, resolved: dict[str, set[str]]) -> str | None:
    """etcd's check of a peer's client certificate against the address it connects from: with no SANs it
    passes; the address must be among the IP SANs, or one of the DNS SANs must resolve to it
    (``resolved``: each DNS SAN -> the addresses it resolves to)."""
    ips, names = san_names(cert)
    if not ips and not names:
        return None
    if remote_ip in ips:
        return None
    if not names:
        return f"x509: certificate is valid for {', '.join(ips)}, not {remote_ip}"
    if any(remote_ip in resolved.get(name, set()) for name in names):
        return None
    quoted = " ".join(f'"{name}"' for name in names)
    return f'tls: "{remote_ip}" does not match any of DNSNames [{quoted}]'


def _name_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern == host:
        return True
    if not pattern.startswith("*.") or "." not in host:
        return False
    return host.split(".", 1)[1] == pattern[2:] and host.split(".", 1)[0] != ""
