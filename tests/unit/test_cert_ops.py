"""``deployment cert-req-create`` and ``cert-update``: what is written, the exact run, refusals that change nothing.

The run is recorded instead of started (kayobe style); the certificates are real (``cryptography``).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from viocli import certificates as certificates_module
from viocli.cli.main import cli
from viocli.errors import BadInput, OperationFailed
from viocli.inventory.load import load_inventory
from viocli.ops import certs
from viocli.ops.tls import external_ca_file, external_files, external_pem, read_record, tls_dir
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings
from viocli.state.store import StateStore

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"
NAME = "vio-tiny"
FQDN, VIP = "openstack-tiny.example.com", "192.168.70.90"


@pytest.fixture
def deployment(viocli_env):
    """A running tiny deployment (secrets generated, vCenter password stored)."""
    settings = load_settings()
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment(NAME, EXAMPLES / "tiny.yml", "tiny")
    store.set_deployment_status(NAME, "running")
    store.close()
    secrets = SecretStore(settings.deployment_dir(NAME))
    secrets.ensure_generated()
    secrets.set("vcenter_password", "VcPass-Certs-0123")
    return settings


@pytest.fixture
def runs(monkeypatch):
    """Record the runs cert-update asks for (and the secrets it adds) instead of running Ansible."""
    made = []

    class Result:
        changed = 2

    def fake_run(settings, deployment, run, **kwargs):
        made.append((run, kwargs.get("extra_secrets")))
        return Result()

    monkeypatch.setattr(certs, "run_ansible", fake_run)
    monkeypatch.setattr(certs, "_wait_served_on_vip", lambda deployment, info: None)
    return made


class SigningCA:
    """A CA that signs CSRs, as an operator's would."""

    def __init__(self, name: str = "Test Root CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1000))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def sign(self, csr: x509.CertificateSigningRequest, days: int = 365, names: list[str] | None = None):
        now = datetime.datetime.now(datetime.UTC)
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if names is not None:
            sans = x509.SubjectAlternativeName([_general_name(n) for n in names])
        return (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(sans, critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path


def _general_name(name: str):
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _request(settings, tmp_path: Path, *extra: str) -> x509.CertificateSigningRequest:
    result = certs.cert_req_create(settings, None, NAME, None, extra, tmp_path / "req.csr")
    return x509.load_pem_x509_csr((tmp_path / "req.csr").read_bytes()), result


def test_cert_req_create_keeps_a_pending_key_and_requests_the_fqdn_and_vip(deployment, tmp_path: Path) -> None:
    subject = certificates_module.SubjectFields("", organization="Example Corp", country="US")
    result = certs.cert_req_create(deployment, None, NAME, subject, ["api.example.com"], tmp_path / "req.csr")
    csr = x509.load_pem_x509_csr((tmp_path / "req.csr").read_bytes())
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Corp"
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(v) for v in names.get_values_for_type(x509.DNSName)] == [FQDN, "api.example.com"]
    assert [str(v) for v in names.get_values_for_type(x509.IPAddress)] == [VIP]
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == FQDN
    assert result.key_path.stat().st_mode & 0o777 == 0o600
    assert result.csr_path.read_bytes() == (tmp_path / "req.csr").read_bytes()
    assert any(line.startswith("subject") for line in result.lines)
    # A second request does not lose the first one's key: a certificate signed for either installs.
    _, again = _request(deployment, tmp_path)
    assert again.key_path != result.key_path and result.key_path.exists() and again.replaced_pending == 1


def test_cert_update_runs_the_rollout_then_records_the_certificate(deployment, runs, tmp_path: Path) -> None:
    settings = deployment
    csr, request = _request(settings, tmp_path)
    pending_key = request.key_path.read_text()
    ca = SigningCA()
    signed = ca.sign(csr)
    (tmp_path / "signed.pem").write_bytes(_pem(signed))
    root = ca.write(tmp_path / "ca.pem")
    # the root given in the chain too, as CAs often send it: it is checked, and not served
    result = certs.cert_update(settings, None, NAME, cert=tmp_path / "signed.pem", chain=root, ca=root)

    [(run, extra)] = runs
    sha1 = signed.fingerprint(hashes.SHA1()).hex().upper()
    assert run.playbook == "cert-update.yml" and run.limit is None and run.tags == ()
    assert dict(run.extravars) == {"viocli_action": "cert_update", "haproxy_external_sha1": sha1}
    served = x509.load_pem_x509_certificates(extra["haproxy_external_pem"].encode())
    assert served == [signed]  # the root is not sent
    assert pending_key in extra["haproxy_external_pem"]
    assert result.info.sha1 == sha1 and result.ca_file == external_ca_file(settings.deployment_dir(NAME))

    directory = settings.deployment_dir(NAME)
    assert read_record(directory)["source"] == "cert-update"
    assert external_ca_file(directory).read_bytes() == _pem(ca.cert)
    assert not request.key_path.exists(), "the pending key became the served one"
    # configure and recover serve what is recorded, not a generated certificate
    model = load_inventory(EXAMPLES / "tiny.yml").model
    assert external_files(model, directory).source == "cert-update"
    assert external_pem(model, directory) == extra["haproxy_external_pem"]
    keys = [p for p in tls_dir(directory).rglob("*.key")]
    assert keys and all(p.stat().st_mode & 0o777 == 0o600 for p in keys)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("wrong key", "does not match the certificate"),
        ("another CA", "does not chain to the CA"),
        ("expired", "expired on"),
        ("no fqdn", FQDN),
        ("weak key", "RSA 1024"),
    ],
)
def test_refused_certificates_exit_2_and_change_nothing(deployment, runs, tmp_path: Path, case: str, says: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    settings = deployment
    csr, _ = _request(settings, tmp_path)
    ca = SigningCA()
    key_file = None
    if case == "weak key":
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(csr.subject)
            .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
            .sign(weak, hashes.SHA256())
        )
        key_file = tmp_path / "weak.key"
        key_file.write_bytes(
            weak.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    signer = SigningCA("Another CA") if case == "another CA" else ca
    signed = signer.sign(csr, names=[VIP] if case == "no fqdn" else None)
    if case == "expired":
        now = datetime.datetime.now(datetime.UTC)
        signed = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca.cert.subject)
            .public_key(csr.public_key())
            .serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now - datetime.timedelta(days=2))
            .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
            .sign(ca.key, hashes.SHA256())
        )
    if case == "wrong key":
        other = ec.generate_private_key(ec.SECP256R1())
        key_file = tmp_path / "other.key"
        key_file.write_bytes(
            other.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    (tmp_path / "signed.pem").write_bytes(_pem(signed))
    directory = tls_dir(settings.deployment_dir(NAME))
    before = {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}

    argv = ["deployment", "cert-update", "-d", NAME, "-p", str(tmp_path / "signed.pem")]
    argv += ["--ca", str(ca.write(tmp_path / "ca.pem"))] + (["--key", str(key_file)] if key_file else [])
    outcome = CliRunner().invoke(cli, argv)
    assert outcome.exit_code == 2, outcome.output
    problems = [line for line in outcome.stderr.splitlines() if line.startswith("  ") and "hint:" not in line]
    problems = [line for line in problems if "log:" not in line]
    assert len(problems) == 1 and says in problems[0], outcome.stderr
    assert "nothing was changed" in outcome.stderr
    assert runs == []
    assert {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()} == before


def test_a_certificate_with_no_pending_key_needs_key(deployment, runs, tmp_path: Path) -> None:
    ca = SigningCA()
    other = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FQDN)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(FQDN)]), critical=False)
        .sign(other, hashes.SHA256())
    )
    (tmp_path / "signed.pem").write_bytes(_pem(ca.sign(csr)))
    with pytest.raises(BadInput, match="none of the pending keys") as raised:
        certs.cert_update(deployment, None, NAME, cert=tmp_path / "signed.pem", ca=ca.write(tmp_path / "ca.pem"))
    assert "--key" in raised.value.hint and runs == []


def test_a_failed_rollout_keeps_the_record_and_says_how_to_finish(deployment, monkeypatch, tmp_path: Path) -> None:
    settings = deployment
    csr, request = _request(settings, tmp_path)
    ca = SigningCA()
    (tmp_path / "signed.pem").write_bytes(_pem(ca.sign(csr)))

    def failing_run(*_args, **_kwargs):
        raise OperationFailed("loadbalancer01: Wait until HAProxy serves the new certificate failed")

    monkeypatch.setattr(certs, "run_ansible", failing_run)
    with pytest.raises(OperationFailed) as raised:
        certs.cert_update(settings, None, NAME, cert=tmp_path / "signed.pem", ca=ca.write(tmp_path / "ca.pem"))
    assert "run the same cert-update again" in raised.value.hint
    directory = settings.deployment_dir(NAME)
    assert read_record(directory) == {} and request.key_path.exists()


def test_self_signed_renews_the_deployments_own_certificate(deployment, runs) -> None:
    settings = deployment
    directory = settings.deployment_dir(NAME)
    model = load_inventory(EXAMPLES / "tiny.yml").model
    old = x509.load_pem_x509_certificates(external_pem(model, directory).encode())[0]
    result = certs.cert_update(settings, None, NAME, self_signed=True, days=400)
    [(run, extra)] = runs
    assert run.playbook == "cert-update.yml"
    new = x509.load_pem_x509_certificates(extra["haproxy_external_pem"].encode())[0]
    assert new.serial_number != old.serial_number and new.issuer == old.issuer
    assert 399 <= result.info.days_left() <= 400
    assert read_record(directory)["source"] == "self-signed"
    assert external_files(model, directory).source == "generated"
    assert new == x509.load_pem_x509_certificates(external_pem(model, directory).encode())[0], "configure keeps it"


def test_cert_update_argument_rules(deployment, runs, tmp_path: Path) -> None:
    for argv, says in [
        (["deployment", "cert-update", "-d", NAME], "give the signed certificate"),
        (["deployment", "cert-update", "-d", NAME, "--self-signed", "--days", "10"], "--days 10"),
        (
            ["deployment", "cert-update", "-d", NAME, "--days", "100", "--self-signed", "--key", __file__],
            "--self-signed",
        ),
    ]:
        outcome = CliRunner().invoke(cli, argv)
        assert outcome.exit_code == 2 and says in outcome.stderr, (argv, outcome.output)
    assert runs == []


def test_a_user_who_cannot_read_the_record_is_told_by_the_ca_file_check(deployment, monkeypatch) -> None:
    """deployment status runs for any user, and the deployment's directory is root's (0700): the record's
    PermissionError is not an error of its own (the CA file's check then says "run as root")."""
    from viocli.ops.tls import client_ca_file

    model = load_inventory(EXAMPLES / "tiny.yml").model
    directory = deployment.deployment_dir(NAME)
    real_read_text = Path.read_text

    def denied(self, *args, **kwargs):
        if self.name == "external.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    assert read_record(directory) == {}
    assert client_ca_file(model, directory) == external_ca_file(directory)
