"""Lab networking: bridges in the host namespace, one network namespace per node, veth pairs."""

from __future__ import annotations

import hashlib
import json
from ipaddress import IPv4Address, IPv4Interface

from viocli.errors import Refused
from viocli.lab.journal import Journal
from viocli.lab.layout import LAB_RANGE, LabNetwork
from viocli.lab.system import run


def link_exists(name: str, netns: str | None = None) -> bool:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    return run([*prefix, "link", "show", "dev", name], check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return name in {entry.get("name") for entry in json.loads(run(["ip", "-j", "netns", "list"]).stdout or "[]")}


def check_range_free(journal: Journal) -> None:
    """Refuse if the machine already uses the lab's range on an interface the lab did not create."""
    ours = {r["name"] for r in journal.records() if r["kind"] == "bridge"}
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for info in link.get("addr_info", []):
            address = IPv4Interface(f"{info['local']}/{info['prefixlen']}")
            if address.network.overlaps(LAB_RANGE) and link["ifname"] not in ours:
                raise Refused(
                    f"lab: {link['ifname']} already uses {address}, inside the lab's range {LAB_RANGE}",
                    hint="the lab needs that range for itself; free it or run the lab on another machine",
                )


def ensure_bridge(network: LabNetwork, journal: Journal) -> bool:
    """Create the network's bridge with the host's address on it; False if it was already there."""
    recorded = any(r["kind"] == "bridge" and r["name"] == network.bridge for r in journal.records())
    if link_exists(network.bridge):
        if not recorded:
            raise Refused(f"lab: a link named {network.bridge} exists and the lab did not create it; remove it first")
        run(["ip", "link", "set", network.bridge, "up"])
        return False
    journal.record("bridge", name=network.bridge)
    run(["ip", "link", "add", network.bridge, "type", "bridge"])
    # Bridged lab traffic must not meet the host's iptables FORWARD policy (br_netfilter).
    run(
        [
            "ip",
            "link",
            "set",
            network.bridge,
            "type",
            "bridge",
            "nf_call_iptables",
            "0",
            "nf_call_ip6tables",
            "0",
            "nf_call_arptables",
            "0",
        ],
        check=False,
    )
    run(["ip", "addr", "add", f"{network.host_ip}/{network.prefix}", "dev", network.bridge])
    run(["ip", "link", "set", network.bridge, "up"])
    return True


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", name])


def veth_name(node_key: str, index: int) -> str:
    """Host-side interface name of a node's NIC: short (15 chars max) and unique per node and NIC."""
    return f"vl{hashlib.sha1(node_key.encode()).hexdigest()[:8]}n{index}"


def create_netns(name: str) -> None:
    if not netns_exists(name):
        run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def delete_netns(name: str) -> None:
    if netns_exists(name):
        run(["ip", "netns", "del", name])


def attach_nic(netns: str, host_if: str, index: int, bridge: str, address: IPv4Address, prefix: int) -> None:
    """A veth pair: the host end on ``bridge``, the other end ``eth<index>`` in the node's namespace."""
    peer = f"{host_if}p"
    delete_link(host_if)
    run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer])
    run(["ip", "link", "set", host_if, "master", bridge, "up"])
    run(["ip", "link", "set", peer, "netns", netns])
    run(["ip", "-n", netns, "link", "set", peer, "name", f"eth{index}"])
    run(["ip", "-n", netns, "addr", "add", f"{address}/{prefix}", "dev", f"eth{index}"])
    run(["ip", "-n", netns, "link", "set", f"eth{index}", "up"])


def set_default_route(netns: str, gateway: IPv4Address) -> None:
    run(["ip", "-n", netns, "route", "replace", "default", "via", str(gateway)])
