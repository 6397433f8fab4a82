"""Where the lab lives and which addresses it uses.

Every address of the lab is inside one dedicated range, 10.203.0.0/16: the management and API
bridges and the nodes' interfaces in their namespaces. The machine's own interfaces and routes are
never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

LAB_RANGE = IPv4Network("10.203.0.0/16")


@dataclass(frozen=True)
class LabNetwork:
    """One lab network: a Linux bridge in the host namespace backing one vSphere port group."""

    name: str
    bridge: str
    portgroup: str
    cidr: IPv4Network
    host_ip: IPv4Address  # the bridge's own address: the OMS on this network, and the gateway

    @property
    def prefix(self) -> int:
        return self.cidr.prefixlen


MGMT = LabNetwork("management", "violab-mgmt", "vio-mgmt-pg", IPv4Network("10.203.0.0/24"), IPv4Address("10.203.0.1"))
API = LabNetwork("api", "violab-api", "vio-api-pg", IPv4Network("10.203.1.0/24"), IPv4Address("10.203.1.1"))
NETWORKS = (MGMT, API)

VCSIM_PORT = 8989
NFS_PORT = 2049
NFS_PSEUDO = "/vio_backup"


@dataclass(frozen=True)
class LabPaths:
    """Files of one lab under ``<state>/lab``; caches (template, simulator build) are elsewhere."""

    root: Path

    @property
    def journal(self) -> Path:
        return self.root / "resources.jsonl"

    @property
    def nodes(self) -> Path:
        return self.root / "nodes"

    def node(self, key: str) -> Path:
        return self.nodes / key

    @property
    def nfs_export(self) -> Path:
        return self.root / "nfs" / "export"

    @property
    def watcher_log(self) -> Path:
        return self.root / "watcher.log"

    @property
    def status_file(self) -> Path:
        return self.root / "lab.json"


def network_for_portgroup(portgroup: str) -> LabNetwork | None:
    """The lab network behind a vSphere port group name."""
    return next((n for n in NETWORKS if n.portgroup == portgroup), None)
