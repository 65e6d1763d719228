"""Throwaway TLS material for tests: a CA and certificates it signs, written as PEM files (cryptography).

``make_certs`` writes the usual set (CA, server, client); ``CertAuthority`` issues more on demand (expired ones,
chosen names, either usage) and CRLs revoking any of them."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertFiles:
    ca: str  # the CA certificate (PEM)
    server_cert: str  # for 127.0.0.1 and localhost, signed by the CA
    server_key: str
    client_cert: str  # a client certificate signed by the CA
    client_key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> str:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


def _write_cert(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def make_certs(directory: Path, server_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> CertFiles:
    """A fresh CA, a server certificate for ``server_names`` (IP addresses or DNS names) and a client
    certificate, valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("etcdx test CA"))
        .issuer_name(_name("etcdx test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, usage, sans: list[x509.GeneralName]):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    server_sans = [_general_name(name) for name in server_names]
    server_key, server_cert = leaf("etcdx test server", ExtendedKeyUsageOID.SERVER_AUTH, server_sans)
    client_key, client_cert = leaf("etcdx test client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return CertFiles(
        ca=_write_cert(directory / "ca.pem", ca),
        server_cert=_write_cert(directory / "server.pem", server_cert),
        server_key=_write_key(directory / "server-key.pem", server_key),
        client_cert=_write_cert(directory / "client.pem", client_cert),
        client_key=_write_key(directory / "client-key.pem", client_key),
    )


@dataclass(frozen=True)
class Issued:
    cert: str
    key: str
    serial: int


class CertAuthority:
    """A CA in ``directory`` that issues leaf certificates and CRLs as PEM files named after ``label``."""

    def __init__(self, directory: Path, name: str = "etcdx test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        label = name.replace(" ", "-")
        self.path = _write_cert(directory / f"{label}.pem", self.cert)

    def issue(
        self,
        label: str,
        common_name: str = "",
        sans: tuple[str, ...] = (),
        *,
        server: bool = False,
        client: bool = True,
        expired: bool = False,
    ) -> Issued:
        """A leaf certificate for ``common_name`` with ``sans`` (IPs or DNS names), usable to serve and/or
        as a client; an ``expired`` one ended an hour ago."""
        now = datetime.datetime.now(datetime.UTC)
        start = now - datetime.timedelta(days=2 if expired else 0, minutes=5)
        end = now - datetime.timedelta(hours=1) if expired else now + datetime.timedelta(days=1)
        usages = [
            u for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client)) if on
        ]
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name or label))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in sans]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(
            _write_cert(self.directory / f"{label}.pem", cert),
            _write_key(self.directory / f"{label}-key.pem", key),
            serial,
        )

    def crl(self, label: str, revoked: list[Issued], *, der: bool = False) -> str:
        """A CRL revoking ``revoked``, written as PEM (or DER) to <label>.crl."""
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - datetime.timedelta(minutes=5))
            .next_update(now + datetime.timedelta(days=1))
        )
        for issued in revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(issued.serial).revocation_date(now).build()
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(self.key, hashes.SHA256())
        path = self.directory / f"{label}.crl"
        path.write_bytes(crl.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM))
        return str(path)
