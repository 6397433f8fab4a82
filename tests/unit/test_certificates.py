"""The logic behind `deployment cert-req-create` and `cert-update`: one line per refusal, none for a good one."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from viocli import certificates
from viocli.certificates import (
    SubjectFields,
    build_csr,
    check_certificate,
    csr_pem,
    describe,
    describe_csr,
    load_certificates,
    load_private_key,
    new_private_key,
    pem_bundle,
    private_key_pem,
)
from viocli.errors import BadInput

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
FQDN = "openstack.example.com"
VIP = "192.0.2.10"
NAMES = [FQDN, VIP]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _ca(common_name: str, signer=None, *, days_before: int = 365, days_after: int = 3650):
    """A CA certificate and key: self-signed, or an intermediate when ``signer`` (cert, key) is given."""
    key = _ec_key()
    issuer_name, issuer_key = (signer[0].subject, signer[1]) if signer else (_name(common_name), key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=days_before))
        .not_valid_after(NOW + datetime.timedelta(days=days_after))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    issuer,
    *,
    key=None,
    names: list[str] | None = NAMES,
    days_before: int = 1,
    days_after: int = 365,
    ca: bool = False,
    usages: list[x509.ObjectIdentifier] | None = None,
    serial: int | None = None,
):
    """A server certificate ``issuer`` (cert, key) signs; returns (cert, key)."""
    key = key or _ec_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(FQDN))
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=days_before))
        .not_valid_after(NOW + datetime.timedelta(days=days_after))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages or [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if names is not None:
        builder = builder.add_extension(_san(names), critical=False)
    return builder.sign(issuer[1], hashes.SHA256()), key


@pytest.fixture(scope="module")
def root():
    return _ca("Example Root CA")


@pytest.fixture(scope="module")
def intermediate(root):
    return _ca("Example Issuing CA", root, days_before=30, days_after=1000)


def _check(leaf, chain, key, ca, names=NAMES, **kwargs):
    return check_certificate(leaf, chain, key, ca, names, now=NOW, **kwargs)


def _one_problem(report, phrase: str) -> str:
    assert len(report.problems) == 1, report.problems
    assert phrase in report.problems[0]
    assert "\n" not in report.problems[0]
    return report.problems[0]


# --- accepted ---


def test_good_certificate_signed_by_the_root(root) -> None:
    leaf, key = _leaf(root)
    report = _check(leaf, [], key, [root[0]])
    assert report.problems == []
    assert report.warnings == []
    assert report.info.names == (FQDN, VIP)


def test_good_certificate_via_an_intermediate(root, intermediate) -> None:
    leaf, key = _leaf(intermediate)
    assert _check(leaf, [intermediate[0]], key, [root[0]]).problems == []
    # a chain file that also holds the root is fine
    assert _check(leaf, [intermediate[0], root[0]], key, [root[0]]).problems == []


def test_wildcard_covers_one_label(root) -> None:
    leaf, key = _leaf(root, names=["*.example.com", VIP])
    assert _check(leaf, [], key, [root[0]], names=["API.Example.com", VIP]).problems == []


def test_system_trust_store_is_the_default(root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_bytes(root[0].public_bytes(serialization.Encoding.PEM))
    monkeypatch.setattr(certificates, "SYSTEM_CA_BUNDLE", bundle)
    leaf, key = _leaf(root)
    assert _check(leaf, [], key, None).problems == []


# --- refused ---


def test_wrong_key(root) -> None:
    leaf, _ = _leaf(root)
    line = _one_problem(_check(leaf, [], _ec_key(), [root[0]]), "the key does not match the certificate")
    assert "cert-req-create" in line
    assert "--key" in line


def test_chain_to_another_ca(root) -> None:
    other = _ca("Other Root CA")
    leaf, key = _leaf(other)
    line = _one_problem(_check(leaf, [], key, [root[0]]), "does not chain to the CA in --ca (CN=Example Root CA)")
    assert "no certificate was given for CN=Other Root CA" in line
    assert "--chain" in line


def test_same_name_other_key_is_not_the_ca(root) -> None:
    impostor = _ca("Example Root CA")
    leaf, key = _leaf(impostor)
    _one_problem(_check(leaf, [], key, [root[0]]), "is not signed by the CN=Example Root CA certificate given")


def test_missing_intermediate(root, intermediate) -> None:
    leaf, key = _leaf(intermediate)
    line = _one_problem(_check(leaf, [], key, [root[0]]), "does not chain to")
    assert "no certificate was given for CN=Example Issuing CA, the issuer of the certificate" in line


def test_expired_intermediate(root) -> None:
    old = _ca("Old Issuing CA", root, days_before=400, days_after=-1)
    leaf, key = _leaf(old)
    line = _one_problem(_check(leaf, [old[0]], key, [root[0]]), "the chain holds expired certificates")
    assert "CN=Old Issuing CA" in line


def test_expired_root(root) -> None:
    dead_root = _ca("Dead Root CA", days_before=400, days_after=-1)
    leaf, key = _leaf(dead_root)
    _one_problem(_check(leaf, [], key, [dead_root[0]]), "CN=Dead Root CA expired on")


def test_intermediate_that_is_not_a_ca(root) -> None:
    fake, fake_key = _leaf(root)  # a server certificate used to sign another one
    leaf, key = _leaf((fake, fake_key))
    _one_problem(_check(leaf, [fake], key, [root[0]]), "is not a CA certificate")


def test_no_system_trust_store(root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certificates, "SYSTEM_CA_BUNDLE", tmp_path / "absent.crt")
    leaf, key = _leaf(root)
    _one_problem(_check(leaf, [], key, None), "pass the CA's root certificate with --ca")


def test_expired(root) -> None:
    leaf, key = _leaf(root, days_before=400, days_after=-2)
    line = _one_problem(_check(leaf, [], key, [root[0]]), "the certificate expired on ")
    assert (NOW - datetime.timedelta(days=2)).strftime("%Y-%m-%d %H:%M UTC") in line


def test_expired_via_an_intermediate_is_one_line(root, intermediate) -> None:
    leaf, key = _leaf(intermediate, days_before=20, days_after=-1)
    _one_problem(_check(leaf, [intermediate[0]], key, [root[0]]), "the certificate expired on ")


def test_root_in_chain_that_is_not_trusted(root, intermediate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_bytes(_ca("Public Root CA")[0].public_bytes(serialization.Encoding.PEM))
    monkeypatch.setattr(certificates, "SYSTEM_CA_BUNDLE", bundle)
    leaf, key = _leaf(intermediate)
    line = _one_problem(_check(leaf, [intermediate[0], root[0]], key, None), "system trust store")
    assert "its root CN=Example Root CA is not among the trusted CAs" in line


def test_not_yet_valid(root) -> None:
    leaf, key = _leaf(root, days_before=-3, days_after=365)
    line = _one_problem(_check(leaf, [], key, [root[0]]), "the certificate is not valid before ")
    assert (NOW + datetime.timedelta(days=3)).strftime("%Y-%m-%d %H:%M UTC") in line


def test_ten_days_left(root) -> None:
    leaf, key = _leaf(root, days_after=10)
    line = _one_problem(_check(leaf, [], key, [root[0]]), "expires in 10 days (")
    assert "under the 30 days viocli asks for" in line
    assert "--force" in line


def test_ten_days_left_with_force_is_a_warning(root) -> None:
    leaf, key = _leaf(root, days_after=10)
    report = _check(leaf, [], key, [root[0]], force=True)
    assert report.problems == []
    expiry = (NOW + datetime.timedelta(days=10)).strftime("%Y-%m-%d")
    assert report.warnings == [f"expires in 10 days ({expiry}): installed anyway because of --force"]


def test_san_without_the_fqdn(root) -> None:
    leaf, key = _leaf(root, names=["other.example.com", VIP])
    line = _one_problem(_check(leaf, [], key, [root[0]]), "does not cover openstack.example.com:")
    assert "DNS:other.example.com, IP:192.0.2.10" in line


def test_san_without_the_vip(root) -> None:
    leaf, key = _leaf(root, names=[FQDN])
    line = _one_problem(_check(leaf, [], key, [root[0]]), "does not cover 192.0.2.10:")
    assert FQDN + "," not in line.split("does not cover")[1]


def test_no_san_at_all(root) -> None:
    leaf, key = _leaf(root, names=None)
    _one_problem(_check(leaf, [], key, [root[0]]), "the certificate has no subjectAltName")


@pytest.mark.parametrize("name", ["a.b.example.com", "example.com", "api.example.org"])
def test_wildcard_does_not_cover(root, name: str) -> None:
    leaf, key = _leaf(root, names=["*.example.com", VIP])
    _one_problem(_check(leaf, [], key, [root[0]], names=[name, VIP]), f"does not cover {name}:")


def test_weak_rsa_1024_key(root) -> None:
    leaf, key = _leaf(root, key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    line = _one_problem(_check(leaf, [], key, [root[0]]), "the certificate's key is RSA 1024: too weak")
    assert "use RSA 2048+ or EC P-256+" in line


def test_ed25519_key(root) -> None:
    leaf, key = _leaf(root, key=ed25519.Ed25519PrivateKey.generate())
    line = _one_problem(_check(leaf, [], key, [root[0]]), "the certificate's key is Ed25519")
    assert "use RSA 2048+ or EC P-256+" in line


def test_leaf_is_a_ca(root) -> None:
    leaf, key = _leaf(root, ca=True)
    _one_problem(_check(leaf, [], key, [root[0]]), "the certificate is a CA certificate")


def test_eku_client_auth_only(root) -> None:
    leaf, key = _leaf(root, usages=[ExtendedKeyUsageOID.CLIENT_AUTH])
    _one_problem(_check(leaf, [], key, [root[0]]), "extendedKeyUsage allows clientAuth, not serverAuth")


# --- the CSR ---


def test_csr_round_trip() -> None:
    key = new_private_key()
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    subject = SubjectFields(
        FQDN, country="us", state="CA", locality="Palo Alto", organization="Example", organizational_unit="Cloud"
    )
    names = [FQDN, VIP, "OpenStack.Example.com", "api.example.com", VIP]
    csr = x509.load_pem_x509_csr(csr_pem(build_csr(key, subject, names)))

    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    assert csr.subject.rfc4514_string() == f"CN={FQDN},OU=Cloud,O=Example,L=Palo Alto,ST=CA,C=US"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [
        x509.DNSName(FQDN),
        x509.IPAddress(ipaddress.ip_address(VIP)),
        x509.DNSName("api.example.com"),
    ]
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    eku = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert describe_csr(csr) == [
        f"subject: CN={FQDN},OU=Cloud,O=Example,L=Palo Alto,ST=CA,C=US",
        f"subjectAltName: DNS:{FQDN}, IP:{VIP}, DNS:api.example.com",
        "key: RSA 2048",
        "signature: sha256WithRSAEncryption",
    ]
    assert private_key_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_csr_takes_a_wildcard_and_ipv6() -> None:
    csr = build_csr(_ec_key(), SubjectFields(FQDN), ["*.example.com", "2001:db8::10"])
    assert describe_csr(csr)[1] == "subjectAltName: DNS:*.example.com, IP:2001:db8::10"
    assert describe_csr(csr)[2:] == ["key: EC P-256", "signature: ecdsa-with-SHA256"]


@pytest.mark.parametrize(
    ("subject", "names", "phrase"),
    [
        (SubjectFields(FQDN, country="USA"), NAMES, "country: 'USA' is not a 2-letter"),
        (SubjectFields("  "), NAMES, "common name: empty"),
        (SubjectFields(FQDN), [FQDN, "bad name!"], "names: 'bad name!' is neither an IP address nor a valid DNS name"),
        (SubjectFields(FQDN), ["10.0.0.256"], "names: '10.0.0.256' is neither"),
        (SubjectFields(FQDN), ["a.*.example.com"], "names: 'a.*.example.com' is neither"),
        (SubjectFields(FQDN), [], "names: none given"),
    ],
)
def test_csr_bad_input(subject: SubjectFields, names: list[str], phrase: str) -> None:
    with pytest.raises(BadInput) as caught:
        build_csr(_ec_key(), subject, names)
    assert phrase in caught.value.message
    assert "\n" not in caught.value.message


# --- files ---


def test_encrypted_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    path.write_bytes(
        _ec_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(BadInput) as caught:
        load_private_key(path)
    assert str(path) in caught.value.message
    assert "must be unencrypted" in caught.value.message
    assert caught.value.hint is not None
    assert f"openssl pkey -in {path} -out PLAIN_KEY" in caught.value.hint


def test_key_file_round_trip_and_not_a_key(tmp_path: Path) -> None:
    key = _ec_key()
    path = tmp_path / "server.key"
    path.write_bytes(private_key_pem(key))
    assert load_private_key(path).private_numbers() == key.private_numbers()
    path.write_text("hello\n")
    with pytest.raises(BadInput, match="holds no PEM private key"):
        load_private_key(path)
    with pytest.raises(BadInput, match="cannot read the key file"):
        load_private_key(tmp_path / "absent.key")


def test_file_with_no_certificate(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(private_key_pem(_ec_key()))
    with pytest.raises(BadInput) as caught:
        load_certificates(path)
    assert caught.value.message == f"{path}: holds no certificate (no BEGIN CERTIFICATE block)"
    path.write_text("not a certificate\n")
    with pytest.raises(BadInput, match="not a PEM file"):
        load_certificates(path)


def test_load_certificates_in_order(tmp_path: Path, root, intermediate) -> None:
    path = tmp_path / "chain.pem"
    path.write_bytes(b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in (intermediate[0], root[0])))
    assert load_certificates(path) == [intermediate[0], root[0]]


# --- describe and the bundle ---


def test_describe_fields(root) -> None:
    leaf, _ = _leaf(root, days_after=45)
    info = describe(leaf)
    assert info.subject == f"CN={FQDN}"
    assert info.issuer == "CN=Example Root CA"
    assert info.serial.lstrip("0") == format(leaf.serial_number, "X")
    assert info.sha1 == leaf.fingerprint(hashes.SHA1()).hex().upper()
    assert info.sha256 == leaf.fingerprint(hashes.SHA256()).hex().upper()
    assert info.not_after == NOW + datetime.timedelta(days=45)
    assert info.not_before.tzinfo is not None
    assert info.names == (FQDN, VIP)
    assert info.key == "EC P-256"
    assert info.days_left(NOW) == 45
    assert info.days_left(NOW + datetime.timedelta(hours=1)) == 44
    assert info.days_left(NOW + datetime.timedelta(days=46)) == -1


def test_serial_is_printed_in_whole_bytes_like_haproxy(root) -> None:
    leaf, _ = _leaf(root, serial=0xABC)
    assert describe(leaf).serial == "0ABC"


def test_pem_bundle_order_without_root(root, intermediate) -> None:
    leaf, key = _leaf(intermediate)
    bundle = pem_bundle(leaf, [intermediate[0], root[0]], key)
    certs = x509.load_pem_x509_certificates(bundle.encode())
    assert certs == [leaf, intermediate[0]]
    assert bundle.index("END CERTIFICATE") < bundle.index("BEGIN PRIVATE KEY")
    assert bundle.rstrip().endswith("-----END PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(bundle.encode(), password=None)
    assert loaded.public_key() == key.public_key()
