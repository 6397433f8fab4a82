"""From a valid inventory to the concrete node list: names, roles, VM names, sizes and stable IPs.

IP allocation is stable: a node that already has an address (recorded in the state store) keeps it,
whatever the counts do; new nodes take the lowest free address of the pool. So raising a count never
renumbers anyone, and a recovered node comes back with its name and IP.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from viocli.errors import BadInput
from viocli.inventory.checks import effective_counts
from viocli.inventory.model import Inventory, Network
from viocli.inventory.modes import API_NETWORK_ROLES, PLACEMENT, ROLE_LABELS, ROLES, SIZING


@dataclass(frozen=True)
class Addresses:
    """A node's addresses: management always, API only where the external VIP can live."""

    mgmt_ip: IPv4Address
    api_ip: IPv4Address | None = None


@dataclass(frozen=True)
class Node:
    """One control-plane VM."""

    name: str
    role: str
    index: int
    groups: tuple[str, ...]
    vm_name: str
    mgmt_ip: IPv4Address
    api_ip: IPv4Address | None
    vcpus: int
    memory_mb: int
    disk_gb: int
    datastore: str
    compute_clusters: tuple[str, ...] = field(default=())

    @property
    def addresses(self) -> list[str]:
        """Every address the node answers on: management, then API (known_hosts lists them all)."""
        return [str(a) for a in (self.mgmt_ip, self.api_ip) if a is not None]

    @property
    def role_label(self) -> str:
        """Role as VMware's viocli showed it; a node holding several roles lists them all."""
        return ",".join(ROLE_LABELS[group] for group in self.groups if group in ROLE_LABELS)


@dataclass(frozen=True)
class PlannedNode:
    """A node before it has addresses."""

    name: str
    role: str
    index: int
    needs_api: bool


def planned_nodes(inventory: Inventory) -> list[PlannedNode]:
    """Every node the inventory asks for, in allocation order (compute last, so it can grow)."""
    counts = effective_counts(inventory)
    api_roles = API_NETWORK_ROLES[inventory.mode]
    nodes = []
    for role in ROLES:
        for index in range(counts[role]):
            nodes.append(PlannedNode(f"{role}{index + 1:02d}", role, index, role in api_roles))
    return nodes


def _free(network: Network, unavailable: set[IPv4Address]) -> Iterator[IPv4Address]:
    """Pool addresses in order, lazily: a pool may be large and only a few are needed."""
    for address_range in network.pool:
        for address in address_range:
            if address not in unavailable:
                yield address


def allocate(inventory: Inventory, previous: Mapping[str, Addresses] | None = None) -> dict[str, Addresses]:
    """Give every planned node its addresses, keeping each previously recorded one.

    ``previous`` holds the addresses of nodes that exist (from the state store). Addresses of
    recorded nodes that are no longer planned stay taken: their VMs may still be running.
    """
    previous = dict(previous or {})
    nets = inventory.networks
    reserved = {inventory.vips.internal, inventory.vips.external, nets.management.gateway, nets.api.gateway}
    taken_mgmt = reserved | {a.mgmt_ip for a in previous.values()}
    taken_api = reserved | {a.api_ip for a in previous.values() if a.api_ip is not None}
    free_mgmt = _free(nets.management, taken_mgmt)
    free_api = _free(nets.api, taken_api)
    result: dict[str, Addresses] = {}
    for planned in planned_nodes(inventory):
        known = previous.get(planned.name)
        mgmt_ip = known.mgmt_ip if known else None
        api_ip = known.api_ip if known else None
        if mgmt_ip is None:
            mgmt_ip = next(free_mgmt, None)
            if mgmt_ip is None:
                raise BadInput(
                    f"the management IP pool has no free address left for {planned.name}",
                    hint="widen networks.management.pool in the inventory",
                )
        if planned.needs_api and api_ip is None:
            api_ip = next(free_api, None)
            if api_ip is None:
                raise BadInput(
                    f"the API IP pool has no free address left for {planned.name}",
                    hint="widen networks.api.pool in the inventory",
                )
        result[planned.name] = Addresses(mgmt_ip, api_ip if planned.needs_api else None)
    return result


def resolve_nodes(inventory: Inventory, addresses: Mapping[str, Addresses]) -> list[Node]:
    """Combine planned nodes, their addresses, sizing (mode < inventory) and datastore placement."""
    placement = PLACEMENT[inventory.mode]
    datastores = inventory.vcenter.datastores
    clusters = tuple(c.name for c in inventory.compute_clusters)
    nodes = []
    for planned in planned_nodes(inventory):
        spec = getattr(inventory.roles, planned.role)
        defaults = SIZING[inventory.mode][planned.role]
        groups = placement[planned.role]
        if planned.role == "compute":
            served = (clusters[planned.index],) if inventory.mode == "ha" else clusters
        elif "compute" in groups:
            served = clusters
        else:
            served = ()
        address = addresses[planned.name]
        nodes.append(
            Node(
                name=planned.name,
                role=planned.role,
                index=planned.index,
                groups=groups,
                vm_name=f"{inventory.name}-{ROLE_LABELS[planned.role]}-{planned.index}",
                mgmt_ip=address.mgmt_ip,
                api_ip=address.api_ip,
                vcpus=spec.vcpus or defaults["vcpus"] or 1,
                memory_mb=spec.memory_mb or defaults["memory_mb"] or 1024,
                disk_gb=spec.disk_gb or defaults["disk_gb"] or 10,
                # Members of a role land on different datastores (anti-affinity), round robin.
                datastore=datastores[planned.index % len(datastores)],
                compute_clusters=served,
            )
        )
    return nodes
