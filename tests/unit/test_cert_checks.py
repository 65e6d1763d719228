"""The reason a revoked client certificate is refused with, in etcd's words: the serial's big-endian bytes
in hex, so a serial whose first byte is below 0x10 keeps its leading zero (as etcd 3.5.1 prints it)."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from etcdx.net.cert_checks import revoked


def certificate(serial: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(serial).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
    return builder.sign(key, hashes.SHA256())


def test_a_revoked_serial_is_named_by_its_bytes_leading_zero_kept():
    serial = 0x0F5678_2059973E_3CC7AA5E
    assert revoked(certificate(serial), frozenset({serial})) == (
        "transport: certificate serial 0f56782059973e3cc7aa5e revoked"
    )
    assert revoked(certificate(0xAB12), frozenset({serial})) is None
