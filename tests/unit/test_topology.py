"""Shipped inventories, node naming per mode, sizing, placement and stable IP allocation."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from viocli.errors import BadInput
from viocli.inventory.load import load_inventory
from viocli.inventory.topology import Addresses, allocate, resolve_nodes
from viocli.state.store import StateStore

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"


def _edit(path: Path, change) -> Path:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("name", ["ha", "compact", "tiny"])
def test_shipped_examples_are_valid_without_warnings(name: str) -> None:
    loaded = load_inventory(EXAMPLES / f"{name}.yml")
    assert loaded.model.mode == name
    assert loaded.warnings == []


def test_ha_nodes_names_roles_and_networks() -> None:
    model = load_inventory(EXAMPLES / "ha.yml").model
    nodes = resolve_nodes(model, allocate(model))
    assert [n.name for n in nodes] == [
        "loadbalancer01",
        "loadbalancer02",
        "database01",
        "database02",
        "database03",
        "controller01",
        "controller02",
        "compute01",
        "compute02",
    ]
    assert {n.name: n.role_label for n in nodes}["database02"] == "DB"
    assert {n.name: n.vm_name for n in nodes}["controller01"] == "vio-prod-Controller-0"
    # Only the load balancers sit on the API network (they hold the external VIP).
    assert [n.name for n in nodes if n.api_ip] == ["loadbalancer01", "loadbalancer02"]
    # One compute node per compute cluster.
    assert [n.compute_clusters for n in nodes if n.role == "compute"] == [
        ("compute-cluster-a",),
        ("compute-cluster-b",),
    ]
    # Members of a role are spread over datastores (anti-affinity).
    assert len({n.datastore for n in nodes if n.role == "database"}) == 3
    # Sizing: inventory beats the mode default, the mode default fills the rest.
    controller = nodes[5]
    assert (controller.vcpus, controller.memory_mb, controller.disk_gb) == (8, 16384, 80)


def test_tiny_puts_every_role_on_controller01() -> None:
    model = load_inventory(EXAMPLES / "tiny.yml").model
    (node,) = resolve_nodes(model, allocate(model))
    assert node.name == "controller01"
    assert node.role_label == "Controller,DB,LoadBalancer,ComputeDriver"
    assert node.api_ip is not None
    assert node.compute_clusters == ("compute-cluster-a",)


def test_compact_has_controller_and_one_compute() -> None:
    model = load_inventory(EXAMPLES / "compact.yml").model
    nodes = resolve_nodes(model, allocate(model))
    assert [(n.name, n.role_label) for n in nodes] == [
        ("controller01", "Controller,DB,LoadBalancer"),
        ("compute01", "ComputeDriver"),
    ]


def test_vips_and_gateways_are_never_allocated(example) -> None:
    path = _edit(example("tiny"), lambda d: d["networks"]["management"].update(pool="10.40.0.89-10.40.0.92"))
    path = _edit(path, lambda d: d["vips"].update(internal="10.40.0.95"))
    model = load_inventory(path).model
    addresses = allocate(model)
    assert addresses["controller01"].mgmt_ip == IPv4Address("10.40.0.89")


def test_raising_a_count_never_renumbers_existing_nodes(example, tmp_path: Path) -> None:
    path = example("ha")
    store = StateStore.open_writable(tmp_path / "viocli.db")
    model = load_inventory(path).model
    first = resolve_nodes(model, allocate(model, store.addresses(model.name)))
    store.record_nodes(model.name, first)
    before = {n.name: (n.mgmt_ip, n.api_ip) for n in first}

    # Add a controller and a compute cluster: both would shift if allocation were positional.
    _edit(path, lambda d: d["roles"]["controller"].update(count=3))
    _edit(path, lambda d: d["compute_clusters"].append({"name": "compute-cluster-c"}))
    model = load_inventory(path).model
    second = resolve_nodes(model, allocate(model, store.addresses(model.name)))
    after = {n.name: (n.mgmt_ip, n.api_ip) for n in second}
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {"controller03", "compute03"}
    new_ips = {after["controller03"][0], after["compute03"][0]}
    assert not new_ips & {ip for ip, _ in before.values()}


def test_recovered_node_keeps_name_and_ip(example, tmp_path: Path) -> None:
    path = example("ha")
    store = StateStore.open_writable(tmp_path / "viocli.db")
    model = load_inventory(path).model
    nodes = resolve_nodes(model, allocate(model))
    store.record_nodes(model.name, nodes)
    store.update_node(model.name, "database02", vm_id="vm-42", status="lost")
    again = resolve_nodes(model, allocate(model, store.addresses(model.name)))
    assert {n.name: n.mgmt_ip for n in again} == {n.name: n.mgmt_ip for n in nodes}


def test_lowering_a_count_keeps_the_removed_nodes_addresses_taken(example) -> None:
    path = example("ha")
    model = load_inventory(path).model
    previous = allocate(model)
    _edit(path, lambda d: d["compute_clusters"].pop(0))
    _edit(path, lambda d: d["compute_clusters"].append({"name": "compute-cluster-z"}))
    model = load_inventory(path).model
    now = allocate(model, previous)
    # compute02 existed (cluster b, now first): keeps its address; the new one takes a fresh one.
    assert now["compute01"] == previous["compute01"]
    assert now["compute02"] == previous["compute02"]


def test_exhausted_pool_with_recorded_nodes_is_a_clear_error(example) -> None:
    path = _edit(example("tiny"), lambda d: d["networks"]["management"].update(pool="10.40.0.100-10.40.0.102"))
    model = load_inventory(path).model
    taken = {f"gone{i}": Addresses(IPv4Address(f"10.40.0.{100 + i}")) for i in range(3)}
    with pytest.raises(BadInput, match="management IP pool has no free address left for controller01"):
        allocate(model, taken)


def test_a_huge_pool_validates_and_allocates_quickly(example) -> None:
    import time

    def widen(d):
        d["networks"]["management"].update(cidr="10.0.0.0/8", gateway="10.0.0.1", pool="10.0.0.10-10.255.255.200")
        d["vips"]["internal"] = "10.0.0.5"

    path = _edit(example("ha"), widen)
    started = time.monotonic()
    model = load_inventory(path).model
    addresses = allocate(model)
    assert time.monotonic() - started < 2
    assert addresses["loadbalancer01"].mgmt_ip == IPv4Address("10.0.0.10")
