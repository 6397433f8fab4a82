"""A small private CA and the server certificates it signs (the lab's vCenter, a deployment's external VIP).

``ensure_server_cert`` makes a CA once (key 0600, certificate 0644: clients need it) and a server
certificate for a set of names (IP addresses and DNS names in subjectAltName), and reuses both while
they are valid, still signed by that CA, cover every name and are not within ``RENEW_BEFORE`` of expiry.
Files are written atomically and never readable beyond their final mode.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viocli.atomic import write_atomic

CA_DAYS = 3650
CERT_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class CertFiles:
    """Where a CA and one server certificate signed by it live."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def ensure_ca(cert_path: Path, key_path: Path, name: str) -> tuple[Any, Any]:
    """Load the CA (certificate and key) at these paths, or make a new one when it is missing or due."""
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    ca = _load_ca(cert_path, key_path)
    return ca if ca is not None else _new_ca(cert_path, key_path, name)


def ensure_server_cert(files: CertFiles, names: Sequence[str], *, ca_name: str, cert_name: str) -> CertFiles:
    """Make (or keep) the CA and a server certificate valid for every name in ``names``.

    ``names`` holds IP addresses and DNS names; each goes into subjectAltName with its type.
    ``ca_name`` and ``cert_name`` are the subjects' common names. Returns ``files``.
    """
    wanted = [_general_name(name) for name in names]
    ca = ensure_ca(files.ca_cert, files.ca_key, ca_name)
    if not _server_cert_valid(files.cert, files.key, ca[0], wanted):
        _new_server_cert(files.cert, files.key, ca, wanted, cert_name)
    return files


def issue_server_cert(files: CertFiles, names: Sequence[str], *, ca_name: str, cert_name: str, days: int) -> CertFiles:
    """Always sign a new key and certificate (``days`` long) for ``names`` with the CA of ``files``."""
    ca = ensure_ca(files.ca_cert, files.ca_key, ca_name)
    _new_server_cert(files.cert, files.key, ca, [_general_name(name) for name in names], cert_name, days)
    return files


def _general_name(name: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _load_ca(cert_path: Path, key_path: Path) -> tuple[Any, Any] | None:
    """The CA certificate and key if both load, match and stay valid long enough; else None."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not _fresh(cert) or cert.public_key().public_numbers() != key.public_key().public_numbers():
        return None
    return cert, key


def _server_cert_valid(cert_path: Path, key_path: Path, ca_cert: Any, wanted: list[Any]) -> bool:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return False
    if not _fresh(cert) or any(name not in names for name in wanted):
        return False
    for path in (cert_path, key_path):
        path.chmod(0o600)
    return True


def _fresh(cert: Any) -> bool:
    now = datetime.datetime.now(datetime.UTC)
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def _key_usage(*, signs: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not signs,
        key_cert_sign=signs,
        crl_sign=signs,
        encipher_only=False,
        decipher_only=False,
    )


def _new_ca(cert_path: Path, key_path: Path, common_name: str) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _sha256())
    )
    write_atomic(key_path, _key_pem(key), 0o600)
    write_atomic(cert_path, _cert_pem(cert), 0o644)
    return cert, key


def _new_server_cert(
    cert_path: Path, key_path: Path, ca: tuple[Any, Any], names: list[Any], common_name: str, days: int = CERT_DAYS
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, _sha256())
    )
    write_atomic(key_path, _key_pem(key), 0o600)
    write_atomic(cert_path, _cert_pem(cert), 0o600)


def _builder(subject: Any, issuer: Any, public_key: Any, days: int) -> Any:
    from cryptography import x509

    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)
