"""A deployment's certificates on the OMS: its own CA, the external VIP's certificate, and which one is served.

Every deployment has a private CA (``tls/ca.pem``, key ``tls/ca.key``). What HAProxy serves on the
external VIP comes from one of three places, the first that applies:

1. the certificate ``deployment cert-update`` installed (``tls/external-custom.pem``: the certificate and
   its chain; key ``tls/external-custom.key``), recorded in ``tls/external.json``;
2. the operator's files named by the inventory's ``external_tls``;
3. a certificate the deployment's CA signs for the external VIP and FQDN (``tls/external.crt``).

``tls/external-ca.pem`` (0644) is the CA clients use to verify the external VIP: the deployment's CA, or
the CA given to ``cert-update``. Every key is 0600; the PEM bundle HAProxy serves only travels to the
load balancers in the run's 0600 secrets file. ``configure`` and ``recover`` read the same record, so an
installed certificate is never replaced by a generated one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from viocli import pki
from viocli.atomic import write_atomic
from viocli.errors import BadInput
from viocli.inventory.model import Inventory

CA_CERT_NAME = "external-ca.pem"
RECORD_NAME = "external.json"
Source = Literal["cert-update", "inventory", "generated"]


@dataclass(frozen=True)
class ExternalFiles:
    """The files of the external certificate that is served, and where they come from."""

    source: Source
    cert: Path  # the certificate, then its chain
    key: Path
    chain: Path | None = None


def tls_dir(deployment_dir: Path) -> Path:
    """Where a deployment's CA, certificates and pending key live."""
    return deployment_dir / "tls"


def external_ca_file(deployment_dir: Path) -> Path:
    """The CA certificate clients use to verify the external VIP (unless the inventory names the certificate)."""
    return tls_dir(deployment_dir) / CA_CERT_NAME


def deployment_ca(deployment_dir: Path, deployment_name: str) -> pki.CertFiles:
    """The deployment's own CA (made on first use, kept while valid), with its generated external certificate.

    Deployments made before the CA had its own files kept it as ``external-ca.pem``/``external-ca.key``:
    those are adopted once.
    """
    directory = tls_dir(deployment_dir)
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = directory / "ca.pem", directory / "ca.key"
    old_key = directory / "external-ca.key"
    if old_key.exists() and not ca_key.exists():
        shutil.copyfile(directory / CA_CERT_NAME, ca_cert)
        os.replace(old_key, ca_key)
    pki.ensure_ca(ca_cert, ca_key, ca_name(deployment_name))
    cert, key = directory / "external.crt", directory / "external.key"
    return pki.CertFiles(ca_cert=ca_cert, ca_key=ca_key, cert=cert, key=key)


def custom_files(deployment_dir: Path) -> ExternalFiles:
    """Where ``cert-update`` keeps the certificate it installed."""
    directory = tls_dir(deployment_dir)
    return ExternalFiles("cert-update", directory / "external-custom.pem", directory / "external-custom.key")


def read_record(deployment_dir: Path) -> dict[str, str]:
    """What ``cert-update`` recorded about the served certificate ({} before the first one)."""
    try:
        data = json.loads((tls_dir(deployment_dir) / RECORD_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, PermissionError):
        # none yet; or a user other than root (deployment status), for whom the deployment's directory
        # (0700) is closed: what needs the record then reports it cannot read the CA file, beside it
        return {}
    except (OSError, ValueError) as error:
        raise BadInput(f"cannot read {tls_dir(deployment_dir) / RECORD_NAME}: {error}") from None
    return data if isinstance(data, dict) else {}


def write_record(deployment_dir: Path, record: dict[str, str]) -> None:
    """Record which certificate is served (``source``: cert-update or self-signed) and what it is."""
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    write_atomic(tls_dir(deployment_dir) / RECORD_NAME, text.encode(), 0o644)


def external_files(model: Inventory, deployment_dir: Path) -> ExternalFiles:
    """The certificate files the external VIP serves, generating the deployment's own when they are due."""
    source = served_source(model, deployment_dir)
    if source == "cert-update":
        return custom_files(deployment_dir)
    if source == "inventory" and model.external_tls is not None:
        tls = model.external_tls
        return ExternalFiles("inventory", tls.cert_file, tls.key_file, tls.chain_file)
    files = deployment_ca(deployment_dir, model.name)
    pki.ensure_server_cert(files, external_names(model), ca_name=ca_name(model.name), cert_name=external_cn(model))
    ca_file = external_ca_file(deployment_dir)
    if not ca_file.exists() or ca_file.read_bytes() != files.ca_cert.read_bytes():
        write_atomic(ca_file, files.ca_cert.read_bytes(), 0o644)
    return ExternalFiles("generated", files.cert, files.key, files.ca_cert)


def external_names(model: Inventory) -> list[str]:
    """The names a certificate of the external VIP must cover: the VIP and, if set, its FQDN."""
    return [str(model.vips.external)] + ([model.vips.external_fqdn] if model.vips.external_fqdn else [])


def external_cn(model: Inventory) -> str:
    """The common name of the deployment's own external certificate: the FQDN, else the VIP."""
    return model.vips.external_fqdn or str(model.vips.external)


def ca_name(deployment_name: str) -> str:
    """The common name of a deployment's own CA."""
    return f"viocli {deployment_name} CA"


def served_source(model: Inventory, deployment_dir: Path) -> Source:
    """Where the served external certificate comes from (see the module's docstring); changes nothing."""
    source = read_record(deployment_dir).get("source")
    if source == "cert-update":
        return "cert-update"
    return "inventory" if model.external_tls is not None and source != "self-signed" else "generated"


def client_ca_file(model: Inventory, deployment_dir: Path) -> Path | None:
    """The CA file clients verify the external VIP with; None means the system's trust store."""
    return None if served_source(model, deployment_dir) == "inventory" else external_ca_file(deployment_dir)


def external_pem(model: Inventory, deployment_dir: Path) -> str:
    """The certificate chain and private key HAProxy serves on the external VIP, as one PEM text."""
    files = external_files(model, deployment_dir)
    return "".join(read_pem(path) for path in (files.cert, files.chain, files.key) if path is not None)


def read_pem(path: Path, what: str = "external TLS") -> str:
    """A PEM file's text, ending in a newline; BadInput naming ``what`` and the file when it cannot be read."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{what}: cannot read {path}: {error}") from None
    return text if text.endswith("\n") else text + "\n"
