"""Defaults by deployment mode: node counts and sizing per role, and the mode's tuning variables.

These are the "mode defaults" layer of the variable precedence:
role defaults < mode defaults < inventory < custom.yml < ``-e`` on the command line.
"""

from __future__ import annotations

from typing import Any

MODES = ("ha", "compact", "tiny")
ROLES = ("loadbalancer", "database", "controller", "compute")

# Role labels as VMware's viocli printed them in ``viocli show``.
ROLE_LABELS = {
    "controller": "Controller",
    "database": "DB",
    "loadbalancer": "LoadBalancer",
    "compute": "ComputeDriver",
}

# count None: derived (compute nodes follow compute_clusters in HA); sizing None: no such nodes.
SIZING: dict[str, dict[str, dict[str, int | None]]] = {
    "ha": {
        "loadbalancer": {"count": 2, "vcpus": 2, "memory_mb": 4096, "disk_gb": 20},
        "database": {"count": 3, "vcpus": 4, "memory_mb": 16384, "disk_gb": 80},
        "controller": {"count": 2, "vcpus": 8, "memory_mb": 16384, "disk_gb": 80},
        "compute": {"count": None, "vcpus": 2, "memory_mb": 4096, "disk_gb": 20},
    },
    "compact": {
        "loadbalancer": {"count": 0, "vcpus": None, "memory_mb": None, "disk_gb": None},
        "database": {"count": 0, "vcpus": None, "memory_mb": None, "disk_gb": None},
        "controller": {"count": 1, "vcpus": 8, "memory_mb": 32768, "disk_gb": 120},
        "compute": {"count": 1, "vcpus": 2, "memory_mb": 4096, "disk_gb": 20},
    },
    "tiny": {
        "loadbalancer": {"count": 0, "vcpus": None, "memory_mb": None, "disk_gb": None},
        "database": {"count": 0, "vcpus": None, "memory_mb": None, "disk_gb": None},
        "controller": {"count": 1, "vcpus": 8, "memory_mb": 24576, "disk_gb": 120},
        "compute": {"count": 0, "vcpus": None, "memory_mb": None, "disk_gb": None},
    },
}

# Which service groups each node of a role joins. In compact and tiny the controller holds what
# separate nodes hold in HA.
PLACEMENT: dict[str, dict[str, tuple[str, ...]]] = {
    "ha": {
        "loadbalancer": ("loadbalancer",),
        "database": ("database",),
        "controller": ("controller",),
        "compute": ("compute",),
    },
    "compact": {
        "controller": ("controller", "database", "loadbalancer"),
        "compute": ("compute",),
    },
    "tiny": {
        "controller": ("controller", "database", "loadbalancer", "compute"),
    },
}

# Roles whose nodes carry a NIC on the API network: whoever holds the external VIP.
API_NETWORK_ROLES = {"ha": ("loadbalancer",), "compact": ("controller",), "tiny": ("controller",)}

TUNING: dict[str, dict[str, Any]] = {
    "ha": {
        "openstack_api_workers": 4,
        "openstack_rpc_workers": 2,
        "mariadb_innodb_buffer_pool_mb": 4096,
        "mariadb_max_connections": 2000,
        "rabbitmq_vm_memory_high_watermark": 0.4,
        "memcached_memory_mb": 1024,
        "haproxy_maxconn": 8000,
    },
    "compact": {
        "openstack_api_workers": 2,
        "openstack_rpc_workers": 1,
        "mariadb_innodb_buffer_pool_mb": 2048,
        "mariadb_max_connections": 1000,
        "rabbitmq_vm_memory_high_watermark": 0.2,
        "memcached_memory_mb": 512,
        "haproxy_maxconn": 4000,
    },
    "tiny": {
        "openstack_api_workers": 1,
        "openstack_rpc_workers": 1,
        "mariadb_innodb_buffer_pool_mb": 256,
        "mariadb_max_connections": 500,
        "rabbitmq_vm_memory_high_watermark": 0.2,
        "memcached_memory_mb": 128,
        "haproxy_maxconn": 2000,
    },
}


def mode_defaults(mode: str) -> dict[str, Any]:
    """The mode-defaults variable layer: sizing as ``<role>_<field>`` plus tuning variables."""
    layer: dict[str, Any] = {}
    for role, fields in SIZING[mode].items():
        for field, value in fields.items():
            if value is not None:
                layer[f"{role}_{field}"] = value
    layer.update(TUNING[mode])
    return layer
