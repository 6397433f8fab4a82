"""The external VIP's TLS certificate: the operator's own (inventory ``external_tls``) or one viocli makes.

Without ``external_tls`` viocli keeps a private CA per deployment and signs a certificate for the external
VIP and its FQDN. Clients trust ``<deployment dir>/tls/external-ca.pem`` (0644); every key is 0600 and the
PEM bundle HAProxy serves only travels to the load balancers in the run's 0600 secrets file.
"""

from __future__ import annotations

from pathlib import Path

from viocli import pki
from viocli.errors import BadInput
from viocli.inventory.model import Inventory

CA_CERT_NAME = "external-ca.pem"


def tls_dir(deployment_dir: Path) -> Path:
    """Where a deployment's generated external CA and certificate live."""
    return deployment_dir / "tls"


def external_ca_file(deployment_dir: Path) -> Path:
    """The CA certificate clients use to verify the external VIP (generated certificates only)."""
    return tls_dir(deployment_dir) / CA_CERT_NAME


def external_pem(model: Inventory, deployment_dir: Path) -> str:
    """The certificate chain and private key HAProxy serves on the external VIP, as one PEM text."""
    if model.external_tls is not None:
        parts = [model.external_tls.cert_file, model.external_tls.chain_file, model.external_tls.key_file]
        return "".join(_read_pem(path) for path in parts if path is not None)
    names = [str(model.vips.external)] + ([model.vips.external_fqdn] if model.vips.external_fqdn else [])
    directory = tls_dir(deployment_dir)
    files = pki.CertFiles(
        ca_cert=directory / CA_CERT_NAME,
        ca_key=directory / "external-ca.key",
        cert=directory / "external.crt",
        key=directory / "external.key",
    )
    pki.ensure_server_cert(files, names, ca_name=f"viocli {model.name} CA", cert_name=names[-1])
    return "".join(_read_pem(path) for path in (files.cert, files.ca_cert, files.key))


def _read_pem(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"external TLS: cannot read {path}: {error}") from None
    return text if text.endswith("\n") else text + "\n"
