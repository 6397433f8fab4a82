"""The external certificate (issue 15): request, sign with an operator's CA, roll out with no failed
request, refusals that change nothing, expiry in status, and a certificate that configure keeps.

Runs on the session's shared HA deployment and leaves it healthy, serving the test CA's certificate
(clients' CA file updated): later modules keep working through it, and the recover test checks a
recovered load balancer serves it too. Needs root and the lab.
"""

from __future__ import annotations

import datetime
import json
import ssl
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.lab.clients import ApiClientLoop
from tests.lab.conftest import HA, configure
from tests.lab.oms import (
    EXTERNAL_VIP,
    LOADBALANCERS,
    admin_password,
    external_ca,
    recorded_certificate,
    run_viocli,
    served_sha1,
    status_json,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# inventory/lab-ha.yml has no external FQDN (the lab has no DNS): a certificate must name the VIP.


class OperatorCA:
    """The operator's CA: a root and an intermediate that signs the CSRs."""

    def __init__(self, name: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca(f"{name} Root", self.root_key, None, now)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = self._ca(f"{name} Issuing", self.key, (self.root, self.root_key), now)

    @staticmethod
    def _ca(common_name: str, key, issuer, now):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        signer_cert, signer_key = issuer if issuer else (None, key)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(signer_cert.subject if signer_cert else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(signer_key, hashes.SHA256())
        )

    def sign(self, csr_file: Path, out: Path, *, days: int = 365, dns: list[str] | None = None) -> x509.Certificate:
        """Sign the CSR as requested, or (``dns``) for those DNS names only, as a careless CA might."""
        csr = x509.load_pem_x509_csr(csr_file.read_bytes())
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if dns is not None:
            sans = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.intermediate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(sans, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        out.write_bytes(_pem(cert))
        return cert

    def files(self, folder: Path) -> tuple[Path, Path]:
        """(chain file, root file)"""
        chain, root = folder / "chain.pem", folder / "root.pem"
        chain.write_bytes(_pem(self.intermediate))
        root.write_bytes(_pem(self.root))
        return chain, root


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _sha1(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def _request(env: dict[str, str], folder: Path) -> Path:
    csr = folder / "request.csr"
    made = run_viocli(env, "deployment", "cert-req-create", "-d", HA, "--org", "Lab Operator", "-o", str(csr))
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"IP:{EXTERNAL_VIP}" in made.stdout, made.stdout
    return csr


def _update(env: dict[str, str], *args: str):
    return run_viocli(env, "deployment", "cert-update", "-d", HA, *args, timeout=900)


def _served(env: dict[str, str]) -> set[str]:
    return {served_sha1(env, HA, lb) for lb in LOADBALANCERS}


def _collector(env: dict[str, str]) -> dict:
    [result] = [r for r in status_json(env, HA) if r["collector_name"] == "VerifyCertificates"]
    return result


def _token_trusting_only(ca_file: Path, password: str) -> str:
    """A Keystone token through the external VIP, TLS verified (chain and address) against ``ca_file`` alone."""
    context = ssl.create_default_context(cafile=str(ca_file))
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": password}},
            },
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    request = urllib.request.Request(
        f"https://{EXTERNAL_VIP}:5000/v3/auth/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        assert response.status == 201
        return response.headers["X-Subject-Token"]


def test_refused_certificates_change_nothing(ha, tmp_path: Path) -> None:
    env, _, _ = ha
    before = _served(env)
    assert len(before) == 1
    ca, other = OperatorCA("Lab Operator"), OperatorCA("Someone Else")
    chain, root = ca.files(tmp_path)
    csr = _request(env, tmp_path)
    cases = {}
    cases["another CA"] = (other.sign(csr, tmp_path / "other.pem"), [], "does not chain to the CA")
    cases["no VIP"] = (ca.sign(csr, tmp_path / "novip.pem", dns=["elsewhere.example.com"]), [], EXTERNAL_VIP)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_file = tmp_path / "weak.key"
    weak_file.write_bytes(
        weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    wrong = ec.generate_private_key(ec.SECP256R1())
    wrong_file = tmp_path / "wrong.key"
    wrong_file.write_bytes(
        wrong.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    good = ca.sign(csr, tmp_path / "good.pem")
    cases["wrong key"] = (good, ["--key", str(wrong_file)], "does not match the certificate")
    # an expired one, signed for the same key
    now = datetime.datetime.now(datetime.UTC)
    request = x509.load_pem_x509_csr(csr.read_bytes())
    expired = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca.intermediate.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
        .sign(ca.key, hashes.SHA256())
    )
    (tmp_path / "expired.pem").write_bytes(_pem(expired))
    cases["expired"] = (expired, [], "expired on")
    weak_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(request.subject)
        .add_extension(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
        .sign(weak, hashes.SHA256())
    )
    (tmp_path / "weak.csr").write_bytes(weak_csr.public_bytes(serialization.Encoding.PEM))
    weak_cert = ca.sign(tmp_path / "weak.csr", tmp_path / "weakcert.pem")
    cases["weak key"] = (weak_cert, ["--key", str(weak_file)], "RSA 1024")
    record = Path(env["VIOCLI_STATE_DIR"]) / "deployments" / HA / "tls"
    files_before = {p: p.read_bytes() for p in record.rglob("*") if p.is_file()}
    for case, (cert, extra, says) in cases.items():
        cert_file = tmp_path / f"{case.replace(' ', '-')}.pem"
        cert_file.write_bytes(_pem(cert))
        refused = _update(env, "-p", str(cert_file), "--chain", str(chain), "--ca", str(root), *extra)
        assert refused.returncode == 2, (case, refused.stdout + refused.stderr)
        assert says in refused.stderr and "nothing was changed" in refused.stderr, (case, refused.stderr)
    assert {p: p.read_bytes() for p in record.rglob("*") if p.is_file()} == files_before
    assert _served(env) == before, "a refused certificate reached a load balancer"


def test_a_certificate_about_to_expire_turns_status_to_warning(ha, tmp_path: Path) -> None:
    env, _, _ = ha
    ca = OperatorCA("Lab Operator")
    chain, root = ca.files(tmp_path)
    short = ca.sign(_request(env, tmp_path), tmp_path / "short.pem", days=10)
    try:
        refused = _update(env, "-p", str(tmp_path / "short.pem"), "--chain", str(chain), "--ca", str(root))
        assert refused.returncode == 2 and "--force" in refused.stderr, refused.stderr
        forced = _update(env, "-p", str(tmp_path / "short.pem"), "--chain", str(chain), "--ca", str(root), "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "warning: " in forced.stderr
        assert _served(env) == {_sha1(short)}
        result = _collector(env)
        assert result["overall_status"] == "WARNING", result
        assert "expires in 9 days" in result["message"] or "expires in 10 days" in result["message"], result
    finally:
        renewed = _update(env, "--self-signed")
        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert _collector(env)["overall_status"] == "SUCCESS"


def test_an_operator_certificate_rolls_out_with_no_failed_request_and_configure_keeps_it(ha, tmp_path: Path) -> None:
    env, _, _ = ha
    ca = OperatorCA("Lab Operator")
    chain, root = ca.files(tmp_path)
    cert = ca.sign(_request(env, tmp_path), tmp_path / "signed.pem")
    # The client trusts the old CA and the new one, as clients do while a CA change rolls out.
    both = tmp_path / "both.pem"
    both.write_bytes(external_ca(env, HA).read_bytes() + _pem(ca.root))
    password = admin_password(env, HA)
    client = ApiClientLoop(EXTERNAL_VIP, password, both)
    with client:
        done = _update(env, "-p", str(tmp_path / "signed.pem"), "--chain", str(chain), "--ca", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(client.records) > 10, "the client loop barely ran"
    assert client.failures == [], client.failures[:5]
    assert "subject:" in done.stdout and "Lab Operator Issuing" in done.stdout

    # Both load balancers serve it; a client that trusts only the operator's CA gets a token.
    assert _served(env) == {_sha1(cert)}
    assert recorded_certificate(env, HA) == cert
    assert external_ca(env, HA).read_bytes() == root.read_bytes()
    assert _token_trusting_only(root, password)
    result = _collector(env)
    assert result["overall_status"] == "SUCCESS" and "issued by CN=Lab Operator Issuing" in result["message"], result

    # configure keeps it (it is the deployment's record, not a generated one)
    assert configure(env, HA, "-t", "haproxy") == 0
    assert _served(env) == {_sha1(cert)}
    failed = [r for r in status_json(env, HA) if r["overall_status"] == "FAILURE"]
    assert failed == [], failed
