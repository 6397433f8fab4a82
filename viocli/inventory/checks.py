"""Rules across fields of a schema-valid inventory: addresses, pools, counts by mode, datastores.

Every rule adds to the collector instead of stopping, so the operator sees all problems at once.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from viocli.inventory.model import Inventory, Network, cluster_slug
from viocli.inventory.modes import API_NETWORK_ROLES, SIZING
from viocli.inventory.problems import ProblemCollector, excerpt, path_excerpt
from viocli.inventory.source import UnreadableFile, read_regular_file

SPARE_ADDRESSES = 2
MAX_PEM_BYTES = 1024 * 1024


def effective_counts(inventory: Inventory) -> dict[str, int]:
    """Nodes per role after mode defaults and the inventory's own counts."""
    counts: dict[str, int] = {}
    for role, defaults in SIZING[inventory.mode].items():
        requested = getattr(inventory.roles, role).count
        if role == "compute" and inventory.mode == "ha":
            counts[role] = len(inventory.compute_clusters)
        elif requested is not None:
            counts[role] = requested
        else:
            counts[role] = defaults["count"] or 0
    return counts


def check_inventory(inventory: Inventory, collector: ProblemCollector, base_dir: Path) -> None:
    """Run every cross-field rule; problems go to ``collector``."""
    _check_counts(inventory, collector)
    _check_network(inventory.networks.management, ("networks", "management"), collector)
    _check_network(inventory.networks.api, ("networks", "api"), collector)
    _check_pools_disjoint(inventory, collector)
    _check_vips(inventory, collector)
    _check_pool_sizes(inventory, collector)
    _check_datastores(inventory, collector)
    _check_compute_clusters(inventory, collector)
    _check_files(inventory, collector, base_dir)


def _check_counts(inventory: Inventory, collector: ProblemCollector) -> None:
    mode = inventory.mode
    counts = effective_counts(inventory)

    def where(role: str) -> tuple:
        spec = getattr(inventory.roles, role)
        return ("roles", role, "count") if spec.count is not None else ("mode",)

    for role in ("loadbalancer", "database", "controller", "compute"):
        spec = getattr(inventory.roles, role)
        if (
            SIZING[mode][role]["count"] == 0
            and role != "compute"
            and any(value is not None for value in spec.model_dump().values())
        ):
            collector.error(
                ("roles", role),
                f"{mode} mode has no separate {role} nodes (the controller holds that role); remove roles.{role}",
                value=False,
            )
    if mode == "ha":
        if inventory.roles.compute.count is not None and inventory.roles.compute.count != len(
            inventory.compute_clusters
        ):
            collector.error(
                ("roles", "compute", "count"),
                f"HA runs one compute node per compute cluster ({len(inventory.compute_clusters)} "
                "listed in compute_clusters); remove roles.compute.count",
            )
        db = counts["database"]
        if db < 3 or db % 2 == 0:
            collector.error(
                where("database"),
                f"HA needs an odd number of database nodes, at least 3, for Galera and RabbitMQ quorum (got {db})",
            )
        if counts["loadbalancer"] != 2:
            collector.error(
                where("loadbalancer"),
                f"HA needs a load-balancer pair: exactly 2 loadbalancer nodes (got {counts['loadbalancer']})",
            )
        if counts["controller"] < 2:
            collector.error(
                where("controller"),
                f"HA needs at least 2 controllers behind the VIPs (got {counts['controller']})",
            )
    else:
        if counts["controller"] != 1:
            collector.error(where("controller"), f"{mode} mode has exactly 1 controller (got {counts['controller']})")
        if mode == "tiny" and inventory.roles.compute.count:
            collector.error(
                ("roles", "compute", "count"),
                "tiny mode runs nova-compute on its single node; remove roles.compute.count",
            )
        if mode == "compact" and counts["compute"] != 1:
            collector.error(
                where("compute"),
                f"compact mode has 1 compute node serving every compute cluster (got {counts['compute']})",
            )


def _check_network(network: Network, path: tuple, collector: ProblemCollector) -> None:
    # Range arithmetic throughout: a pool may be a /8 and must not be walked address by address.
    cidr = network.cidr
    reserved = (cidr.network_address, cidr.broadcast_address)
    if network.gateway not in cidr:
        collector.error((*path, "gateway"), f"gateway {network.gateway} is outside {cidr}")
    elif network.gateway in reserved:
        collector.error((*path, "gateway"), f"gateway {network.gateway} is the network or broadcast address of {cidr}")
    for index, address_range in enumerate(network.pool):
        where = (*path, "pool", index)
        if address_range.first not in cidr or address_range.last not in cidr:
            outside = address_range.first if address_range.first not in cidr else address_range.last
            collector.error(where, f"pool range {address_range}: {outside} is outside {cidr}")
            continue
        bad = [str(a) for a in reserved if a in address_range]
        if bad:
            collector.error(where, f"pool range {address_range} includes the network/broadcast address {bad[0]}")
        if network.gateway in address_range:
            collector.error(where, f"pool range {address_range} includes the gateway {network.gateway}")
        for other_index in range(index):
            if address_range.overlap(network.pool[other_index]):
                collector.error(where, f"pool range {address_range} overlaps pool[{other_index}] (duplicate IPs)")


def _in_pool(address: IPv4Address, network: Network) -> bool:
    return any(address in address_range for address_range in network.pool)


def _check_pools_disjoint(inventory: Inventory, collector: ProblemCollector) -> None:
    management, api = inventory.networks.management.pool, inventory.networks.api.pool
    shared = [(a, b) for a in management for b in api if a.overlap(b)]
    if shared:
        count = sum(a.overlap(b) for a, b in shared)
        first = min(max(int(a.first), int(b.first)) for a, b in shared)
        collector.error(
            ("networks", "api", "pool"),
            f"the API pool and the management pool share {count} address(es), first {IPv4Address(first)} "
            "(duplicate IPs)",
        )


def _check_vips(inventory: Inventory, collector: ProblemCollector) -> None:
    vips = inventory.vips
    management, api = inventory.networks.management, inventory.networks.api
    if vips.internal not in management.cidr:
        collector.error(
            ("vips", "internal"), f"internal VIP {vips.internal} is outside the management network {management.cidr}"
        )
    if vips.external not in api.cidr:
        collector.error(("vips", "external"), f"external VIP {vips.external} is outside the API network {api.cidr}")
    if vips.internal == vips.external:
        collector.error(("vips", "external"), f"external VIP {vips.external} duplicates the internal VIP")
    for name, vip in (("internal", vips.internal), ("external", vips.external)):
        for net_name, network in (("management", management), ("api", api)):
            if _in_pool(vip, network):
                collector.error(
                    ("vips", name),
                    f"{name} VIP {vip} is inside the {net_name} IP pool; VIPs must be outside the pool",
                )
            if vip == network.gateway:
                collector.error(("vips", name), f"{name} VIP {vip} is the {net_name} gateway")
            if vip in (network.cidr.network_address, network.cidr.broadcast_address) and vip in network.cidr:
                collector.error(
                    ("vips", name), f"{name} VIP {vip} is the network or broadcast address of {network.cidr}"
                )


def _check_pool_sizes(inventory: Inventory, collector: ProblemCollector) -> None:
    counts = effective_counts(inventory)
    total = sum(counts.values())
    management = inventory.networks.management
    size = sum(len(r) for r in management.pool)
    if size < total + SPARE_ADDRESSES:
        collector.error(
            ("networks", "management", "pool"),
            f"the management pool has {size} address(es); {total} nodes plus {SPARE_ADDRESSES} spares "
            f"need {total + SPARE_ADDRESSES}",
            value=False,
        )
    api_nodes = sum(counts[role] for role in API_NETWORK_ROLES[inventory.mode])
    api = inventory.networks.api
    api_size = sum(len(r) for r in api.pool)
    if api_size < api_nodes + SPARE_ADDRESSES:
        collector.error(
            ("networks", "api", "pool"),
            f"the API pool has {api_size} address(es); {api_nodes} node(s) on the API network plus "
            f"{SPARE_ADDRESSES} spares need {api_nodes + SPARE_ADDRESSES}",
            value=False,
        )


def _check_datastores(inventory: Inventory, collector: ProblemCollector) -> None:
    seen: dict[str, int] = {}
    for index, name in enumerate(inventory.vcenter.datastores):
        if name in seen:
            collector.error(
                ("vcenter", "datastores", index), f"datastore {excerpt(name)} is listed twice (first at [{seen[name]}])"
            )
        seen.setdefault(name, index)
    if inventory.mode == "ha" and len(seen) < 3:
        collector.warning(
            ("vcenter", "datastores"),
            f"only {len(seen)} datastore(s): anti-affinity spreads the database trio over 3 datastores; "
            "with fewer, a datastore failure can take down Galera quorum",
        )


def _check_compute_clusters(inventory: Inventory, collector: ProblemCollector) -> None:
    seen: dict[str, int] = {}
    slugs: dict[str, int] = {}
    for index, cluster in enumerate(inventory.compute_clusters):
        where = ("compute_clusters", index, "name")
        if cluster.name in seen:
            first = f"compute_clusters[{seen[cluster.name]}]"
            collector.error(
                where,
                f"compute cluster {excerpt(cluster.name)} is listed twice (first at {first}); "
                "each vSphere cluster gets exactly one nova-compute",
            )
            continue
        seen[cluster.name] = index
        slug = cluster_slug(cluster.name)
        if slug in slugs:
            first = inventory.compute_clusters[slugs[slug]].name
            collector.error(
                where,
                f"compute clusters {excerpt(first)} (compute_clusters[{slugs[slug]}]) and {excerpt(cluster.name)} "
                f"would both run as the service nova-compute-{slug}; rename one so that they differ in letters "
                "or digits",
            )
        slugs.setdefault(slug, index)


PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# (field, what the file must hold, test on its bytes)
PEM_RULES: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "certificate": ("a PEM certificate (-----BEGIN CERTIFICATE-----)", lambda data: PEM_CERTIFICATE in data),
    "key": ("a PEM private key (-----BEGIN ... PRIVATE KEY-----)", lambda data: bool(PEM_PRIVATE_KEY.search(data))),
}


def _check_pem_file(path: tuple, value: Path, kind: str, collector: ProblemCollector) -> None:
    """An absolute path to a small regular file holding a PEM block; never quotes the file's content."""
    shown = path_excerpt(value)
    try:
        data = read_regular_file(value, limit=MAX_PEM_BYTES)
    except UnreadableFile as error:
        collector.error(path, f"file {shown} {error}", value=True)
        return
    wanted, test = PEM_RULES[kind]
    if not test(data):
        collector.error(path, f"file {shown} does not hold {wanted}; give the file in PEM format", value=True)


def _check_files(inventory: Inventory, collector: ProblemCollector, base_dir: Path) -> None:
    tls = inventory.vcenter.tls
    if tls.insecure and tls.ca_file is not None:
        collector.error(
            ("vcenter", "tls", "insecure"),
            "insecure: true turns verification off, so ca_file would be ignored; set one or the other",
        )
    elif tls.insecure:
        collector.warning(
            ("vcenter", "tls", "insecure"),
            "TLS verification of vCenter is off; anyone on the path can read the vCenter password",
        )
    pem_files: list[tuple[tuple, Path | None, str]] = [(("vcenter", "tls", "ca_file"), tls.ca_file, "certificate")]
    if inventory.external_tls is not None:
        external = inventory.external_tls
        pem_files += [
            (("external_tls", "cert_file"), external.cert_file, "certificate"),
            (("external_tls", "key_file"), external.key_file, "key"),
            (("external_tls", "chain_file"), external.chain_file, "certificate"),
        ]
    for path, value, kind in pem_files:
        if value is not None:
            _check_pem_file(path, value, kind, collector)
    _check_custom_file(inventory, collector, base_dir)


def _check_custom_file(inventory: Inventory, collector: ProblemCollector, base_dir: Path) -> None:
    # Its content is read (and checked) by the inventory loader; here only that it is a file.
    value = inventory.custom_file
    if value is None:
        return
    resolved = value if value.is_absolute() else base_dir / value
    shown = path_excerpt(value)
    relative = "" if value.is_absolute() else " (relative to the inventory's directory)"
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        collector.error(("custom_file",), f"file {shown}{relative} was not found")
    except (OSError, ValueError) as error:
        collector.error(("custom_file",), f"file {shown}{relative} cannot be read: {type(error).__name__}")
    else:
        if not stat.S_ISREG(info.st_mode):
            collector.error(("custom_file",), f"file {shown}{relative} is not a regular file; name a YAML file")
