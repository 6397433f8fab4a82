"""Render a resolved inventory as Ansible sees it: hosts, groups and the variable layers.

Layers, lowest to highest: role defaults (in the roles) < mode defaults < inventory < custom.yml
< ``-e``. The first two of ours go to the generated inventory's ``all`` vars (merged here, so the
order is explicit); custom.yml and ``-e`` go to extra vars, which nothing in a play can override.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from viocli.inventory.model import Inventory, Network
from viocli.inventory.modes import ROLES, mode_defaults
from viocli.inventory.topology import Node
from viocli.redact import MASK
from viocli.secrets.catalog import secret_names
from viocli.settings import share_dir

# Inventory variables that custom.yml and -e may override: tuning, not identity or topology.
OVERRIDABLE = frozenset({"openstack_api_workers", "openstack_debug", "ntp_servers", "backup_retention"})
RESERVED_PREFIX = "viocli_"


def _network_vars(network: Network) -> dict[str, Any]:
    return {
        "portgroup": network.portgroup,
        "cidr": str(network.cidr),
        "netmask": str(network.cidr.netmask),
        "prefix": network.cidr.prefixlen,
        "gateway": str(network.gateway),
        "dns": [str(a) for a in network.dns],
    }


def inventory_vars(inventory: Inventory) -> dict[str, Any]:
    """The inventory layer: every value the inventory file sets, as flat Ansible variables."""
    vc = inventory.vcenter
    data: dict[str, Any] = {
        "deployment_name": inventory.name,
        "deployment_mode": inventory.mode,
        "vcenter_host": vc.host,
        "vcenter_port": vc.port,
        "vcenter_user": vc.user,
        "vcenter_datacenter": vc.datacenter,
        "vcenter_management_cluster": vc.management_cluster,
        "vcenter_datastores": list(vc.datastores),
        "vcenter_folder": vc.folder or inventory.name,
        "vcenter_template": vc.template,
        "vcenter_insecure": vc.tls.insecure,
        "vcenter_ca_file": str(vc.tls.ca_file) if vc.tls.ca_file else None,
        "mgmt_network": _network_vars(inventory.networks.management),
        "api_network": _network_vars(inventory.networks.api),
        "internal_vip": str(inventory.vips.internal),
        "external_vip": str(inventory.vips.external),
        "external_fqdn": inventory.vips.external_fqdn or str(inventory.vips.external),
        "compute_clusters": [
            {"name": c.name, "datastore_regex": c.datastore_regex} for c in inventory.compute_clusters
        ],
        "backup_nfs": inventory.backup.nfs,
        "backup_retention": inventory.backup.retention,
        "external_tls_cert_file": str(inventory.external_tls.cert_file) if inventory.external_tls else None,
        "external_tls_key_file": str(inventory.external_tls.key_file) if inventory.external_tls else None,
        "internal_tls": inventory.internal_tls,
        "openstack_region": inventory.openstack.region,
        "openstack_admin_user": inventory.openstack.admin_user,
        "openstack_admin_project": inventory.openstack.admin_project,
        "openstack_debug": inventory.openstack.debug,
        "ntp_servers": list(inventory.openstack.ntp_servers),
        "ansible_user": inventory.ssh_user,
    }
    if inventory.openstack.api_workers is not None:
        data["openstack_api_workers"] = inventory.openstack.api_workers
    for role in ROLES:
        spec = getattr(inventory.roles, role)
        for field, value in spec.model_dump().items():
            if value is not None:
                data[f"{role}_{field}"] = value
    return data


def locked_variables(inventory: Inventory) -> set[str]:
    """Variables only the inventory may set (identity, topology, addresses, sizing)."""
    sizing = {f"{role}_{field}" for role in ROLES for field in ("count", "vcpus", "memory_mb", "disk_gb")}
    return (set(inventory_vars(inventory)) | sizing) - OVERRIDABLE


ANSIBLE_MANAGED = "Ansible managed by viocli, do not edit: change the inventory or custom.yml and run configure"
# The nodes' Python (the template's); naming it spares Ansible a discovery round trip per node per run.
NODE_PYTHON = "/usr/bin/python3"


def group_vars(inventory: Inventory) -> dict[str, Any]:
    """Mode defaults overlaid with the inventory: the ``all`` vars of the generated inventory."""
    return {
        **mode_defaults(inventory.mode),
        **inventory_vars(inventory),
        "ansible_managed": ANSIBLE_MANAGED,
        "ansible_python_interpreter": NODE_PYTHON,
    }


@cache
def role_default_names() -> frozenset[str]:
    """Every variable the shipped playbooks declare: the roles' ``defaults/main.yml`` and ``group_vars/all``."""
    names: set[str] = set()
    playbooks = share_dir("playbooks")
    sources = [*playbooks.glob("roles/*/defaults/main.y*ml"), *playbooks.glob("group_vars/all/*.y*ml")]
    for defaults in sorted(sources):
        try:
            data = yaml.safe_load(defaults.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            names.update(str(k) for k in data)
    return frozenset(names)


def known_variables(inventory: Inventory) -> set[str]:
    """Variable names some layer defines: candidates for a custom.yml did-you-mean."""
    return set(role_default_names()) | set(mode_defaults(inventory.mode)) | set(inventory_vars(inventory))


def host_vars(node: Node) -> dict[str, Any]:
    """Per-host variables of one node."""
    return {
        "ansible_host": str(node.mgmt_ip),
        "mgmt_ip": str(node.mgmt_ip),
        "api_ip": str(node.api_ip) if node.api_ip else None,
        "node_role": node.role,
        "vm_name": node.vm_name,
        "node_vcpus": node.vcpus,
        "node_memory_mb": node.memory_mb,
        "compute_clusters_served": list(node.compute_clusters),
    }


def ansible_inventory(inventory: Inventory, nodes: list[Node], *, mask_secrets: bool = True) -> dict[str, Any]:
    """The resolved Ansible inventory (YAML inventory format).

    With ``mask_secrets`` every secret variable is listed with a masked value: this is what
    ``show -p`` prints. Without, secrets are left out: the run engine passes their values in a
    separate 0600 vars file, never in the inventory.
    """
    variables = group_vars(inventory)
    if mask_secrets:
        for name in secret_names():
            variables[name] = MASK
    children: dict[str, Any] = {}
    for group in ROLES:
        members = [n.name for n in nodes if group in n.groups]
        children[group] = {"hosts": {name: None for name in members}}
    return {
        "all": {
            "vars": dict(sorted(variables.items())),
            "hosts": {node.name: host_vars(node) for node in nodes},
            "children": children,
        }
    }
