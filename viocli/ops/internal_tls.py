"""TLS inside the control plane (the inventory's ``internal_tls``): the certificates a run hands the nodes.

With ``internal_tls: true`` HAProxy serves TLS on the internal VIP, and every database node's MariaDB
and RabbitMQ serve TLS with a certificate of its own; every client verifies them against the
deployment's own CA (``tls/ca.pem``, :func:`viocli.ops.tls.deployment_ca`), which the common role
installs on every node. The certificates are signed by that CA on the OMS, under ``tls/internal/``
(keys and certificates 0600), and reused while they are valid, still signed by it and cover every
name: a run that changes nothing rewrites no file on a node and restarts nothing.

They travel to the nodes only in the run's 0600 secrets file (as ``haproxy_external_pem`` does); the
engine masks every value in them. What the playbooks make of them is in
``playbooks/group_vars/all/tls.yml``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from viocli import pki
from viocli.inventory.model import Inventory
from viocli.inventory.topology import Node
from viocli.ops.tls import ca_name as deployment_ca_name
from viocli.ops.tls import deployment_ca, read_pem, tls_dir

# The nodes whose services serve TLS themselves (MariaDB and RabbitMQ); the controllers' APIs stay plain
# HTTP behind HAProxy, which serves the internal VIP's certificate.
SERVING_GROUPS = ("database",)


def internal_directory(deployment_dir: Path) -> Path:
    """Where the internal certificates and their keys live on the OMS."""
    return tls_dir(deployment_dir) / "internal"


def internal_name(model: Inventory) -> str:
    """The internal VIP's host name on every node (the common role's /etc/hosts)."""
    return f"{model.name}-internal"


def node_names(model: Inventory, node: Node) -> list[str]:
    """What a node's certificate covers: its management address and host name, and the internal VIP with
    its name (clients reach MariaDB through HAProxy in TCP mode, so they see the node's certificate there)."""
    return [str(node.mgmt_ip), node.name, str(model.vips.internal), internal_name(model)]


def vip_names(model: Inventory) -> list[str]:
    """What the internal VIP's certificate (HAProxy's frontends) covers."""
    return [str(model.vips.internal), internal_name(model)]


def _signed(ca: pki.CertFiles, directory: Path, name: str, names: Sequence[str], ca_name: str) -> tuple[str, str]:
    """The certificate (common name ``name``) and key for ``names``, made or kept in ``directory/name.crt``
    and ``.key``, as PEM text."""
    files = pki.CertFiles(ca.ca_cert, ca.ca_key, directory / f"{name}.crt", directory / f"{name}.key")
    pki.ensure_server_cert(files, names, ca_name=ca_name, cert_name=name)
    return _read(files.cert), _read(files.key)


def _read(path: Path) -> str:
    return read_pem(path, "internal TLS")


def internal_tls_vars(model: Inventory, nodes: Sequence[Node], deployment_dir: Path) -> dict[str, Any]:
    """The secrets-file variables of internal TLS; {} when the inventory leaves it off.

    - ``viocli_tls_ca_pem``: the deployment's CA certificate (every node, ``viocli_ca_file``);
    - ``viocli_tls_node_certs`` and ``viocli_tls_node_keys``: {node name: PEM} of every node that serves
      TLS itself (the database nodes): two flat maps, so that the engine masks each key as a value;
    - ``haproxy_internal_pem``: the internal VIP's certificate, the CA and the key (HAProxy's bundle).
    """
    if not model.internal_tls:
        return {}
    ca = deployment_ca(deployment_dir, model.name)
    ca_name = deployment_ca_name(model.name)
    directory = internal_directory(deployment_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    certs: dict[str, str] = {}
    keys: dict[str, str] = {}
    for node in nodes:
        if any(group in node.groups for group in SERVING_GROUPS):
            certs[node.name], keys[node.name] = _signed(ca, directory, node.name, node_names(model, node), ca_name)
    vip_cert, vip_key = _signed(ca, directory, internal_name(model), vip_names(model), ca_name)
    ca_pem = _read(ca.ca_cert)
    return {
        "viocli_tls_ca_pem": ca_pem,
        "viocli_tls_node_certs": certs,
        "viocli_tls_node_keys": keys,
        "haproxy_internal_pem": vip_cert + ca_pem + vip_key,
    }
