"""The external VIP's certificate from the operator's CA: the CSR, the files they bring back, and the checks.

``deployment cert-req-create`` makes a key (``new_private_key``) and a CSR for the external FQDN and VIP
(``build_csr``); the operator's CA signs it. ``deployment cert-update`` loads what comes back
(``load_certificates``, ``load_private_key``), refuses a certificate that would break clients
(``check_certificate``: the key, its strength, its use, its dates, its names, its chain) and hands HAProxy
one PEM text (``pem_bundle``). Nothing here touches a node or the deployment's files: the CLI and the
rollout do. ``cryptography`` is imported inside the functions so that the CLI starts fast.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viocli.errors import BadInput

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

# The OMS's trust store (Debian/Ubuntu ca-certificates): the anchors when cert-update is given no --ca.
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

_CHAIN_HINT = "pass the intermediate certificates with --chain and the root with --ca"
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_STRONG_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


@dataclass(frozen=True)
class SubjectFields:
    """The subject of a CSR; every field but the common name may be left out."""

    common_name: str
    country: str | None = None  # 2 letters
    state: str | None = None
    locality: str | None = None
    organization: str | None = None
    organizational_unit: str | None = None


@dataclass(frozen=True)
class CertInfo:
    """What an operator (and ``show ssl cert`` on HAProxy) identifies a certificate by."""

    subject: str  # RFC 4514, e.g. "CN=openstack.example.com,O=Example"
    issuer: str
    serial: str  # upper-case hex of the serial's bytes, no separators, as HAProxy prints it
    not_before: datetime.datetime  # aware, UTC
    not_after: datetime.datetime
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses, in order
    sha1: str  # upper-case hex, no separators ("SHA1 FingerPrint" of HAProxy)
    sha256: str
    key: str  # "RSA 2048", "EC P-256", "Ed25519"...

    def days_left(self, now: datetime.datetime | None = None) -> int:
        """Whole days until ``not_after`` (rounded down; negative once expired)."""
        return (self.not_after - _utc(now)) // datetime.timedelta(days=1)


@dataclass
class CheckReport:
    """The verdict of ``check_certificate``: any problem refuses the certificate (exit 2)."""

    problems: list[str]  # each one line: what is wrong and what to do
    warnings: list[str]  # accepted anyway (e.g. a short validity with --force)
    info: CertInfo  # the leaf


# --- the key and the CSR ---


def new_private_key() -> PrivateKeyTypes:
    """A new RSA 2048 key: the one key type every enterprise CA signs."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem(key: PrivateKeyTypes) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM (HAProxy reads it at every reload, with nobody to type a passphrase)."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def build_csr(key: PrivateKeyTypes, subject: SubjectFields, names: Sequence[str]) -> x509.CertificateSigningRequest:
    """A SHA-256 signed CSR for ``subject`` whose subjectAltName lists ``names`` (deduplicated, in order).

    IP addresses go in as IPAddress entries, everything else as DNSName (a leftmost ``*`` label is allowed).
    The CSR also requests KeyUsage digitalSignature (and keyEncipherment for an RSA key: RFC 8813 forbids
    it for EC keys) and ExtendedKeyUsage serverAuth. Raises ``BadInput`` naming the field that is wrong.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    general_names = _csr_names(names)
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject_name(subject))
        .add_extension(x509.SubjectAlternativeName(general_names), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return builder.sign(key, _signing_hash(key))


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    """The CSR as PEM, the form every CA's web form and ``openssl req`` accept."""
    from cryptography.hazmat.primitives import serialization

    return csr.public_bytes(serialization.Encoding.PEM)


def describe_csr(csr: x509.CertificateSigningRequest) -> list[str]:
    """The lines an operator checks before sending the CSR: subject, subjectAltName, key and signature."""
    from cryptography import x509

    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = ", ".join(_general_name_text(name) for name in san)
    except x509.ExtensionNotFound:
        names = "(none)"
    return [
        f"subject: {csr.subject.rfc4514_string()}",
        f"subjectAltName: {names}",
        f"key: {_key_text(csr.public_key())}",
        f"signature: {_oid_name(csr.signature_algorithm_oid)}",
    ]


def _subject_name(subject: SubjectFields) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    common_name = subject.common_name.strip()
    if not common_name:
        raise BadInput("common name: empty; give the external FQDN")
    country = (subject.country or "").strip()
    if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
        raise BadInput(f"country: {country!r} is not a 2-letter ISO 3166 code (e.g. US, DE)")
    fields = [
        ("country", NameOID.COUNTRY_NAME, country.upper()),
        ("state", NameOID.STATE_OR_PROVINCE_NAME, subject.state),
        ("locality", NameOID.LOCALITY_NAME, subject.locality),
        ("organization", NameOID.ORGANIZATION_NAME, subject.organization),
        ("organizational unit", NameOID.ORGANIZATIONAL_UNIT_NAME, subject.organizational_unit),
        ("common name", NameOID.COMMON_NAME, common_name),
    ]
    attributes = []
    for label, oid, value in fields:
        value = (value or "").strip()
        if not value:
            continue
        if any(ch in value for ch in "\r\n\0"):
            raise BadInput(f"{label}: holds a control character")
        try:
            attributes.append(x509.NameAttribute(oid, value))
        except ValueError as exc:  # lengths X.509 caps, e.g. a common name over 64 characters
            raise BadInput(f"{label}: {exc}") from None
    return x509.Name(attributes)


def _csr_names(names: Sequence[str]) -> list[Any]:
    from cryptography import x509

    general_names: list[Any] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip()
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            dns = name.lower().removesuffix(".")
            if not _valid_dns_name(dns):
                raise BadInput(f"names: {raw!r} is neither an IP address nor a valid DNS name") from None
            key, entry = f"DNS:{dns}", x509.DNSName(dns)
        else:
            key, entry = f"IP:{address}", x509.IPAddress(address)
        if key not in seen:
            seen.add(key)
            general_names.append(entry)
    if not general_names:
        raise BadInput("names: none given; the CSR needs the external FQDN and the external VIP")
    return general_names


def _valid_dns_name(name: str) -> bool:
    """A hostname of letters, digits and hyphens, at least two labels, optionally ``*.`` in front."""
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    return (
        len(name) <= 253
        and len(labels) >= 2
        and all(_LABEL.match(label) for label in labels)
        # an all-numeric last label is a mistyped IP address (10.0.0.256), never a top-level domain
        and not labels[-1].isdigit()
    )


def _signing_hash(key: Any) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None  # EdDSA hashes internally
    return hashes.SHA256()


# --- the files the operator brings ---


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every PEM certificate in ``path``, in order; ``BadInput`` naming the file when there is none."""
    from cryptography import x509

    data = _read(path, "certificate")
    if b"-----BEGIN" not in data:
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            raise BadInput(f"{path}: not a PEM file") from None
        raise BadInput(
            f"{path}: a DER certificate; viocli reads PEM", hint=f"openssl x509 -inform der -in {path} -out CERT.pem"
        )
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise BadInput(f"{path}: holds no certificate (no BEGIN CERTIFICATE block)")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise BadInput(f"{path}: a certificate in it cannot be read ({exc})") from None


def load_private_key(path: Path) -> PrivateKeyTypes:
    """The unencrypted PEM private key in ``path``; ``BadInput`` naming the file otherwise."""
    from cryptography.hazmat.primitives import serialization

    data = _read(path, "key")
    if b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        raise _encrypted_key(path)
    if b"PRIVATE KEY-----" not in data:
        raise BadInput(f"{path}: holds no PEM private key (no BEGIN PRIVATE KEY block)")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted in a form the markers above do not show
        raise _encrypted_key(path) from None
    except (ValueError, serialization.UnsupportedAlgorithm) as exc:
        raise BadInput(f"{path}: the private key cannot be read ({exc})") from None


def _encrypted_key(path: Path) -> BadInput:
    return BadInput(
        f"{path}: the private key is encrypted; it must be unencrypted (HAProxy reads it at every reload, "
        "with nobody to type a passphrase)",
        hint=f"openssl pkey -in {path} -out PLAIN_KEY, then pass --key PLAIN_KEY",
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None


def describe(cert: x509.Certificate) -> CertInfo:
    """The identifying fields of ``cert`` (see ``CertInfo``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(_general_name_value(name) for name in san if _general_name_value(name))
    except x509.ExtensionNotFound:
        names = ()
    serial = cert.serial_number
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        # HAProxy prints the serial's bytes, so 0xABC shows as 0ABC
        serial=abs(serial).to_bytes(max(1, (abs(serial).bit_length() + 7) // 8), "big").hex().upper(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        names=names,
        sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),
        sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        key=_key_text(cert.public_key()),
    )


# --- the checks of cert-update ---


def check_certificate(
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    key: PrivateKeyTypes,
    ca: Sequence[x509.Certificate] | None,
    names: Sequence[str],
    *,
    now: datetime.datetime | None = None,
    min_days: int = 30,
    force: bool = False,
) -> CheckReport:
    """Everything that would make clients of the external VIP fail with ``leaf``, one line per cause.

    ``chain`` holds the intermediates (it may also hold the root); ``ca`` the trust anchors, or None for the
    OMS's system trust store; ``names`` every name the certificate must cover (external FQDN and VIP).
    Checks: the key matches, the key is strong enough, the leaf is a server certificate (not a CA, serverAuth
    if it has an ExtendedKeyUsage), it is valid now with at least ``min_days`` left (a warning instead with
    ``force``), its subjectAltName covers ``names``, and it chains to ``ca``.
    """
    now = _utc(now)
    info = describe(leaf)
    problems: list[str] = []
    warnings: list[str] = []

    public = leaf.public_key()
    if not _same_key(key.public_key(), public):
        problems.append(
            f"the key does not match the certificate: {_key_id(key.public_key())} vs the certificate's "
            f"{_key_id(public)}; use the key the CSR was made with (the pending key of "
            "`viocli deployment cert-req-create`) or pass --key"
        )
    weak = _weak_key(public)
    if weak:
        problems.append(f"the certificate's key is {info.key}: {weak}; use RSA 2048+ or EC P-256+")
    problems.extend(_usage_problems(leaf))

    valid_now = False
    if now < info.not_before:
        problems.append(
            f"the certificate is not valid before {_when(info.not_before)} (it is now {_when(now)}): "
            "install it once it is valid, or check the OMS's clock"
        )
    elif now > info.not_after:
        problems.append(f"the certificate expired on {_when(info.not_after)}; ask the CA for a new one")
    else:
        valid_now = True
    days = info.days_left(now)
    if valid_now and days < min_days:
        expiry = f"expires in {days} days ({info.not_after:%Y-%m-%d})"
        if force:
            warnings.append(f"{expiry}: installed anyway because of --force")
        else:
            problems.append(
                f"{expiry}, under the {min_days} days viocli asks for: renew it, or pass --force to install it anyway"
            )

    san_problem = _names_problem(leaf, names)
    if san_problem:
        problems.append(san_problem)

    chain_problem = _chain_problem(leaf, chain, ca, now)
    if chain_problem:
        problems.append(chain_problem)
    return CheckReport(problems=problems, warnings=warnings, info=info)


def served_certificates(leaf: x509.Certificate, chain: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The certificates HAProxy sends: the leaf, then the chain without self-signed roots (clients have them)."""
    return [leaf] + [cert for cert in chain if cert != leaf and not _self_signed(cert)]


def certificates_pem(certs: Sequence[x509.Certificate]) -> bytes:
    """Certificates as PEM, one after the other."""
    from cryptography.hazmat.primitives import serialization

    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def pem_bundle(leaf: x509.Certificate, chain: Sequence[x509.Certificate], key: PrivateKeyTypes) -> str:
    """What HAProxy serves: the leaf, the chain without self-signed roots (clients have them), then the key."""
    return (certificates_pem(served_certificates(leaf, chain)) + private_key_pem(key)).decode("ascii")


def _usage_problems(leaf: Any) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    problems = []
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            problems.append(
                "the certificate is a CA certificate (basicConstraints CA:TRUE), not a server certificate; "
                "ask the CA to sign the CSR with a server (web server) template"
            )
    except x509.ExtensionNotFound:
        pass
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return problems
    if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        listed = ", ".join(_oid_name(oid) for oid in usages) or "nothing"
        problems.append(
            f"the certificate's extendedKeyUsage allows {listed}, not serverAuth: TLS clients refuse it for a "
            "server; ask the CA to sign the CSR with a server (web server) template"
        )
    return problems


def _names_problem(leaf: Any, names: Sequence[str]) -> str | None:
    from cryptography import x509

    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        wanted = ", ".join(names)
        return (
            f"the certificate has no subjectAltName (clients ignore its CN): ask the CA for one whose "
            f"subjectAltName lists {wanted}"
        )
    dns_patterns = san.get_values_for_type(x509.DNSName)
    addresses = san.get_values_for_type(x509.IPAddress)
    missing = [name for name in names if not _covered(name, dns_patterns, addresses)]
    if not missing:
        return None
    present = ", ".join(_general_name_text(name) for name in san) or "nothing"
    return (
        f"the certificate's subjectAltName ({present}) does not cover {', '.join(missing)}: ask the CA for one "
        "that lists every name of the CSR of `viocli deployment cert-req-create`"
    )


def _covered(name: str, patterns: Sequence[str], addresses: Sequence[Any]) -> bool:
    try:
        address = ipaddress.ip_address(name.strip())
    except ValueError:
        return any(_dns_matches(pattern, name) for pattern in patterns)
    return address in addresses


def _dns_matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching: exact (any case), or ``*.rest`` for exactly one more label in front of ``rest``."""
    pattern = pattern.lower().removesuffix(".")
    name = name.strip().lower().removesuffix(".")
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "*" in pattern[2:] or "." not in pattern[2:]:
        return False
    head, dot, rest = name.partition(".")
    return bool(dot) and bool(head) and rest == pattern[2:]


def _chain_problem(leaf: Any, chain: Sequence[Any], ca: Sequence[Any] | None, now: datetime.datetime) -> str | None:
    if ca is None:
        anchors = _system_anchors()
        if anchors is None:
            return (
                f"there is no system trust store ({SYSTEM_CA_BUNDLE}) to verify the certificate's chain: "
                "pass the CA's root certificate with --ca"
            )
        where = f"a CA of the system trust store ({SYSTEM_CA_BUNDLE})"
    else:
        anchors = list(ca)
        if not anchors:
            return f"no CA certificate was given to verify the chain: {_CHAIN_HINT}"
        where = f"the CA in --ca ({_subjects(anchors)})"
    intermediates = [cert for cert in chain if cert != leaf]

    # An expired certificate in the chain is sent to every client, and some refuse the whole chain for it.
    expired = [cert for cert in intermediates if cert.not_valid_after_utc < now]
    if expired:
        listed = ", ".join(
            f"{cert.subject.rfc4514_string()} (expired on {_when(cert.not_valid_after_utc)})" for cert in expired
        )
        return f"the chain holds expired certificates: {listed}; pass the CA's current chain with --chain"

    # Verify when the leaf is valid: its own dates are reported above, this line is about the chain only.
    when = min(max(now, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    failure = _verify_path(leaf, intermediates, anchors, when)
    if failure is None:
        return None
    reason = _why_unchained(leaf, intermediates, anchors, when) or failure
    return f"the certificate does not chain to {where}: {reason}; {_CHAIN_HINT}"


def _verify_path(leaf: Any, intermediates: list[Any], anchors: list[Any], when: datetime.datetime) -> str | None:
    """None if ``leaf`` chains to ``anchors`` at ``when``, else the verifier's reason.

    The client verifier with a permissive leaf policy judges the path only (signatures, names, CA
    constraints, dates, algorithms): the leaf's names, usages and key are checked on their own, each
    with its own message.
    """
    from cryptography import x509
    from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

    ca_policy = ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(when)
        .extension_policies(ca_policy=ca_policy, ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        text = str(exc)
        for prefix in ("validation failed: ", "candidates exhausted: "):
            text = text.removeprefix(prefix)
        return text.splitlines()[0] if text else "verification failed"
    return None


def _why_unchained(leaf: Any, intermediates: list[Any], anchors: list[Any], when: datetime.datetime) -> str | None:
    """Walk up from ``leaf`` by issuer name to say, in the operator's terms, where the chain breaks."""
    from cryptography.hazmat.primitives import hashes

    pool = [*intermediates, *anchors]
    current = leaf
    for _ in range(len(pool) + 1):
        label = "the certificate" if current is leaf else current.subject.rfc4514_string()
        if current.signature_hash_algorithm is not None and isinstance(
            current.signature_hash_algorithm, hashes.SHA1 | hashes.MD5
        ):
            return f"{label} is signed with {_oid_name(current.signature_algorithm_oid)}, which clients refuse"
        issuers = [cert for cert in pool if cert.subject == current.issuer and cert != current]
        if not issuers:
            if _self_signed(current):
                return f"its root {current.subject.rfc4514_string()} is not among the trusted CAs"
            return f"no certificate was given for {current.issuer.rfc4514_string()}, the issuer of {label}"
        signers = [cert for cert in issuers if _signed_by(current, cert)]
        if not signers:
            return f"{label} is not signed by the {current.issuer.rfc4514_string()} certificate given"
        issuer = signers[0]
        name = issuer.subject.rfc4514_string()
        if not _is_ca(issuer):
            return f"{name} is not a CA certificate (no basicConstraints CA:TRUE)"
        if issuer.not_valid_after_utc < when:
            return f"{name} expired on {_when(issuer.not_valid_after_utc)}"
        if issuer.not_valid_before_utc > when:
            return f"{name} is not valid before {_when(issuer.not_valid_before_utc)}"
        weak = _weak_key(issuer.public_key())
        if weak:
            return f"the key of {name} is {_key_text(issuer.public_key())}: {weak}"
        if any(issuer == anchor for anchor in anchors):
            return None
        current = issuer
    return None


def _system_anchors() -> list[Any] | None:
    import warnings

    from cryptography import x509

    try:
        data = SYSTEM_CA_BUNDLE.read_bytes()
    except OSError:
        return None
    anchors = []
    # One block at a time: a store may hold a root this cryptography rejects (or warns about, like a
    # zero serial), and one odd root must not hide the others.
    for block in re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.DOTALL):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                anchors.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return anchors or None


# --- small helpers ---


def _utc(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.UTC)
    return now.replace(tzinfo=datetime.UTC) if now.tzinfo is None else now.astimezone(datetime.UTC)


def _when(moment: datetime.datetime) -> str:
    return f"{moment.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC"


def _subjects(certs: Sequence[Any]) -> str:
    shown = "; ".join(cert.subject.rfc4514_string() for cert in certs[:3])
    return shown + (f" and {len(certs) - 3} more" if len(certs) > 3 else "")


def _same_key(a: Any, b: Any) -> bool:
    from cryptography.hazmat.primitives import serialization

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(*spki) == b.public_bytes(*spki)


def _key_text(public: Any) -> str:
    """``RSA 2048``, ``EC P-256``, ``Ed25519``..."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA {public.key_size}"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(public.curve.name, public.curve.name)}"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public, dsa.DSAPublicKey):
        return f"DSA {public.key_size}"
    return type(public).__name__


def public_key_sha256(public: Any) -> str:
    """The SHA-256 of a public key's DER SubjectPublicKeyInfo, in hex: what names a key."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _key_id(public: Any) -> str:
    """The key's type and the start of its SubjectPublicKeyInfo's SHA-256: two RSA 2048 keys differ."""
    return f"{_key_text(public)} (public key sha256 {public_key_sha256(public)[:16]})"


def _weak_key(public: Any) -> str | None:
    """Why TLS clients may refuse this key, or None for RSA 2048+ and EC P-256/P-384/P-521."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(public, rsa.RSAPublicKey):
        return None if public.key_size >= 2048 else "too weak"
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name in _STRONG_CURVES:
        return None
    return "not accepted by every TLS client"


def _is_ca(cert: Any) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert: Any, issuer: Any) -> bool:
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _self_signed(cert: Any) -> bool:
    return cert.subject == cert.issuer and _signed_by(cert, cert)


def _general_name_value(name: Any) -> str:
    from cryptography import x509

    if isinstance(name, x509.DNSName | x509.IPAddress):
        return str(name.value)
    return ""


def _general_name_text(name: Any) -> str:
    from cryptography import x509

    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    return f"{type(name).__name__}:{name.value}"


def _oid_name(oid: Any) -> str:
    name = getattr(oid, "_name", None)  # cryptography's own name for the OID, "Unknown OID" if it has none
    return name if name and name != "Unknown OID" else oid.dotted_string
