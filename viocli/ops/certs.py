"""``deployment cert-req-create`` and ``cert-update``: the external VIP's certificate, requested, checked, rolled out.

``cert-req-create`` makes a private key on the OMS (0600, kept as a pending key of the deployment, named
by its public key so that a second request never loses the first one's key) and a CSR for the external
FQDN and VIP. ``cert-update`` checks everything about a signed certificate before it touches a load
balancer (:func:`viocli.certificates.check_certificate`), then serves it on the standby load balancers
first and on the one holding the external VIP last (playbooks/cert-update.yml), checks the VIP serves it,
and only then records it in the deployment (:mod:`viocli.ops.tls`), so that ``configure`` and ``recover``
keep it. ``cert-update --self-signed`` renews the deployment's own certificate the same way.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viocli import certificates, pki
from viocli.atomic import write_atomic
from viocli.errors import BadInput, OperationFailed, ViocliError
from viocli.health.api import external_apis
from viocli.logsetup import get_logger
from viocli.ops import plans
from viocli.ops.ansible import run_ansible
from viocli.ops.configure import configurable_deployment, existing_deployment
from viocli.ops.context import Deployment
from viocli.ops.operation import operation
from viocli.ops.tls import (
    ca_name,
    custom_files,
    deployment_ca,
    external_ca_file,
    external_cn,
    external_names,
    tls_dir,
    write_record,
)
from viocli.settings import Settings, share_dir

VIP_CHECK_SECONDS = 30.0
MIN_SELF_SIGNED_DAYS = 60


@dataclass
class CsrResult:
    """What ``cert-req-create`` wrote, and the request's content for the operator."""

    deployment: str
    csr_path: Path
    key_path: Path
    out_path: Path | None
    lines: list[str]
    replaced_pending: int  # earlier pending keys still kept (a certificate signed for one still installs)


@dataclass
class CertUpdateResult:
    """The certificate now served on the external VIP, and how it got there."""

    deployment: str
    info: certificates.CertInfo
    ca_file: Path
    warnings: list[str] = field(default_factory=list)
    changed: int = 0


def pending_dir(deployment_dir: Path) -> Path:
    """Where the keys of certificate requests wait for their signed certificate."""
    return tls_dir(deployment_dir) / "pending"


def cert_req_create(
    settings: Settings,
    inventory_path: Path | None,
    name: str | None,
    subject: certificates.SubjectFields | None,
    extra_names: Sequence[str] = (),
    out: Path | None = None,
) -> CsrResult:
    """Make a new pending key and a CSR for the external FQDN and VIP (and ``extra_names``)."""
    deployment, _ = existing_deployment(settings, inventory_path, name, "request a certificate for")
    model = deployment.loaded.model
    names = list(dict.fromkeys([*reversed(external_names(model)), *extra_names]))  # the FQDN first: CAs read it
    if subject is None or not subject.common_name:  # the FQDN (else the VIP) unless --cn names another
        subject = dataclasses.replace(subject or certificates.SubjectFields(""), common_name=names[0])
    key = certificates.new_private_key()
    csr = certificates.build_csr(key, subject, names)  # bad input raises here, before anything is written
    csr_pem = certificates.csr_pem(csr)
    if out is not None and not out.parent.is_dir():
        raise BadInput(f"-o {out}: the directory {out.parent} does not exist")
    directory = pending_dir(settings.deployment_dir(deployment.name))
    with operation(settings, deployment.name, "deployment cert-req-create"):
        directory.mkdir(parents=True, exist_ok=True)
        earlier = len(list(directory.glob("*.key")))
        key_path = directory / _pending_key_name(key.public_key())
        write_atomic(key_path, certificates.private_key_pem(key), 0o600)
        csr_path = tls_dir(settings.deployment_dir(deployment.name)) / "pending.csr"
        write_atomic(csr_path, csr_pem, 0o644)
        if out is not None:
            write_atomic(out, csr_pem, 0o644)
    get_logger().info("cert-req-create: %s: new pending key %s, CSR %s", deployment.name, key_path, csr_path)
    return CsrResult(deployment.name, csr_path, key_path, out, certificates.describe_csr(csr), earlier)


@dataclass(frozen=True)
class _NewCertificate:
    """A checked certificate, ready to serve: its parts, what it is, and the CA clients verify it with."""

    leaf: Any
    chain: list[Any]
    key: Any
    ca_pem: bytes
    info: certificates.CertInfo
    warnings: list[str]
    source: str  # cert-update or self-signed
    pending_key: Path | None  # the pending key it uses, removed once it is served


def cert_update(
    settings: Settings,
    inventory_path: Path | None,
    name: str | None,
    *,
    cert: Path | None = None,
    chain: Path | None = None,
    ca: Path | None = None,
    key: Path | None = None,
    force: bool = False,
    self_signed: bool = False,
    days: int = pki.CERT_DAYS,
    verbosity: int = 0,
) -> CertUpdateResult:
    """Check a certificate, serve it on every load balancer (standby first), record it in the deployment.

    Every check happens before anything changes: a refused certificate is BadInput (exit 2) listing
    every failed check. A failed rollout leaves the load balancers not yet done on the old certificate
    and the deployment's record unchanged; the error says how to finish.
    """
    if self_signed == (cert is not None):
        raise BadInput("give the signed certificate (-p CERT_FILE), or --self-signed to renew the deployment's own")
    if self_signed and (chain or ca or key):
        raise BadInput("--self-signed makes its own key and chain: leave out --chain, --ca and --key")
    deployment = configurable_deployment(settings, inventory_path, name, "update the certificate of")
    deployment_dir = settings.deployment_dir(deployment.name)
    with operation(settings, deployment.name, "deployment cert-update"):
        new = (
            _self_signed(deployment, deployment_dir, days)
            if self_signed
            else _operator_certificate(deployment, deployment_dir, cert, chain, ca, key, force)
        )
        pem = certificates.pem_bundle(new.leaf, new.chain, new.key)
        log = get_logger()
        log.info("cert-update: %s: serving %s (%s)", deployment.name, new.info.subject, new.info.sha256)
        try:
            result = run_ansible(
                settings,
                deployment,
                plans.cert_update(deployment, new.info.sha1),
                verbosity=verbosity,
                extra_secrets={"haproxy_external_pem": pem},
            )
            _wait_served_on_vip(deployment, new.info)
        except ViocliError as error:
            error.hint = (
                "the load balancers the run finished serve the new certificate, the others still the old one, "
                "and the deployment still records the old one; fix the cause and run the same cert-update again "
                "(or put the old one back everywhere: "
                f"sudo viocli deployment configure -d {deployment.name} -t haproxy)"
            )
            raise
        _record(deployment_dir, new)
    return CertUpdateResult(deployment.name, new.info, external_ca_file(deployment_dir), new.warnings, result.changed)


def _operator_certificate(
    deployment: Deployment,
    deployment_dir: Path,
    cert: Path | None,
    chain: Path | None,
    ca: Path | None,
    key: Path | None,
    force: bool,
) -> _NewCertificate:
    """Load and check the operator's certificate; BadInput listing every failed check."""
    assert cert is not None
    leaf, *bundled = certificates.load_certificates(cert)
    intermediates = bundled + (certificates.load_certificates(chain) if chain else [])
    anchors = certificates.load_certificates(ca) if ca else None
    pending_key = None
    if key is not None:
        private_key = certificates.load_private_key(key)
    else:
        pending_key = _matching_pending_key(deployment_dir, leaf)
        private_key = certificates.load_private_key(pending_key)
    report = certificates.check_certificate(
        leaf, intermediates, private_key, anchors, external_names(deployment.loaded.model), force=force
    )
    if report.problems:
        raise BadInput(
            f"the certificate in {cert} was refused; nothing was changed",
            details=report.problems,
            hint="fix each line above, then run cert-update again",
        )
    if ca is not None:
        ca_pem = ca.read_bytes()
    elif certificates.SYSTEM_CA_BUNDLE.is_file():
        ca_pem = certificates.SYSTEM_CA_BUNDLE.read_bytes()  # check_certificate verified the chain against it
    else:
        raise BadInput(
            f"no --ca given and {certificates.SYSTEM_CA_BUNDLE} does not exist", hint="pass the root CA with --ca"
        )
    return _NewCertificate(
        leaf, intermediates, private_key, ca_pem, report.info, report.warnings, "cert-update", pending_key
    )


def _self_signed(deployment: Deployment, deployment_dir: Path, days: int) -> _NewCertificate:
    """A new key and certificate from the deployment's own CA, staged until it is served."""
    if not MIN_SELF_SIGNED_DAYS <= days <= pki.CA_DAYS:
        # configure renews the deployment's own certificate within pki.RENEW_BEFORE of its expiry
        raise BadInput(f"--days {days}: give between {MIN_SELF_SIGNED_DAYS} and {pki.CA_DAYS} days")
    model = deployment.loaded.model
    ca = deployment_ca(deployment_dir, model.name)
    staged = pki.CertFiles(
        ca_cert=ca.ca_cert,
        ca_key=ca.ca_key,
        cert=tls_dir(deployment_dir) / "staged-external.crt",
        key=tls_dir(deployment_dir) / "staged-external.key",
    )
    names = external_names(model)
    pki.issue_server_cert(staged, names, ca_name=ca_name(model.name), cert_name=external_cn(model), days=days)
    leaf = certificates.load_certificates(staged.cert)[0]
    anchors = certificates.load_certificates(ca.ca_cert)
    private_key = certificates.load_private_key(staged.key)
    report = certificates.check_certificate(leaf, anchors, private_key, anchors, names)
    if report.problems:  # the deployment's own CA cannot sign what viocli asks: not the operator's input
        raise OperationFailed("the renewed certificate fails its own checks", details=report.problems)
    return _NewCertificate(leaf, anchors, private_key, ca.ca_cert.read_bytes(), report.info, [], "self-signed", None)


def _matching_pending_key(deployment_dir: Path, leaf: Any) -> Path:
    """The pending key whose public key the certificate holds (BadInput when no request made it)."""
    path = pending_dir(deployment_dir) / _pending_key_name(leaf.public_key())
    if path.is_file():
        return path
    pending = sorted(pending_dir(deployment_dir).glob("*.key"))
    raise BadInput(
        "the certificate's key is none of the pending keys of cert-req-create"
        + (f" ({len(pending)} pending)" if pending else " (there is none)")
        + "; nothing was changed",
        hint="pass the key the CSR was made with: --key KEY_FILE",
    )


def _wait_served_on_vip(deployment: Deployment, info: certificates.CertInfo) -> None:
    """The external VIP serves the new certificate (the run checked each load balancer; this is what clients see)."""
    model = deployment.loaded.model
    port = dict(external_apis(share_dir("playbooks"), deployment.loaded.custom_vars))["keystone"]
    address = (str(model.vips.external), port)
    deadline = time.monotonic() + VIP_CHECK_SECONDS
    seen = "nothing"
    while True:
        try:
            with socket.create_connection(address, timeout=5) as raw:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # only comparing the bytes served with the ones just checked
                with context.wrap_socket(raw) as tls:
                    der = tls.getpeercert(binary_form=True) or b""
            seen = hashlib.sha256(der).hexdigest().upper()
            if seen == info.sha256:
                return
        except OSError as error:
            seen = str(error)
        if time.monotonic() > deadline:
            raise OperationFailed(
                f"the external VIP {address[0]}:{address[1]} does not serve the new certificate "
                f"(it serves {seen}, expected {info.sha256})"
            )
        time.sleep(1)


def _record(deployment_dir: Path, new: _NewCertificate) -> None:
    """Keep what is now served, so that configure and recover serve it too."""
    directory = tls_dir(deployment_dir)
    if new.source == "self-signed":
        os.replace(directory / "staged-external.key", directory / "external.key")
        os.replace(directory / "staged-external.crt", directory / "external.crt")
    else:
        files = custom_files(deployment_dir)
        write_atomic(files.key, certificates.private_key_pem(new.key), 0o600)
        # exactly what was served, so that configure serves the same bytes and reloads nothing
        served = certificates.served_certificates(new.leaf, new.chain)
        write_atomic(files.cert, certificates.certificates_pem(served), 0o644)
    write_atomic(external_ca_file(deployment_dir), new.ca_pem, 0o644)
    info = new.info
    write_record(
        deployment_dir,
        {
            "source": new.source,
            "subject": info.subject,
            "issuer": info.issuer,
            "not_after": info.not_after.isoformat(),
            "sha256": info.sha256,
            "installed_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    )
    if new.pending_key is not None:
        new.pending_key.unlink(missing_ok=True)


def _pending_key_name(public_key: Any) -> str:
    """A pending key's file name: the start of its public key's SHA-256 (the certificate holds the same)."""
    return f"{certificates.public_key_sha256(public_key)[:16]}.key"
