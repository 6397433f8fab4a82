"""Provisioning against the vCenter simulator: parallel clones, placement, rules, idempotence, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from viocli.errors import BadInput
from viocli.inventory.load import load_inventory
from viocli.inventory.topology import allocate, resolve_nodes
from viocli.lab import simulator
from viocli.vsphere.connection import connect
from viocli.vsphere.objects import find
from viocli.vsphere.provision import provision
from viocli.vsphere.tasks import wait_for_tasks

pytestmark = pytest.mark.vsphere


def _setup(vcsim: simulator.SimulatorHandle, path: Path, password: str | None = None):
    inventory = load_inventory(path).model
    nodes = resolve_nodes(inventory, allocate(inventory))
    si = connect(
        "127.0.0.1",
        vcsim.port,
        vcsim.username,
        password or simulator.read_password(vcsim.password_file),
        ca_file=vcsim.ca_file,
    )
    return si, inventory, nodes


def _vm(si: Any, name: str) -> Any:
    from pyVmomi import vim

    return find(si, vim.VirtualMachine, name)


def test_ha_deployment_is_cloned_placed_ruled_and_running(vcsim, lab_inventory) -> None:
    si, inventory, nodes = _setup(vcsim, lab_inventory())
    result = provision(si, inventory, nodes)
    assert sorted(result.created) == sorted(n.name for n in nodes) and result.adopted == []
    for node in nodes:
        vm = _vm(si, node.vm_name)
        assert vm.parent.name == "vio-lab-ha"
        assert str(vm.runtime.powerState) == "poweredOn"
        assert vm.guest.hostName.split(".")[0] == node.name
        addresses = {a for nic in vm.guest.net for a in nic.ipAddress}
        assert str(node.mgmt_ip) in addresses
        if node.api_ip:
            assert str(node.api_ip) in addresses
        assert vm.config.hardware.numCPU == node.vcpus and vm.config.hardware.memoryMB == node.memory_mb
        assert result.vm_ids[node.name] == vm._moId
    # The database trio sits on three datastores; each replicated role has an anti-affinity rule.
    databases = [_vm(si, n.vm_name) for n in nodes if n.role == "database"]
    assert len({vm.datastore[0].name for vm in databases}) == 3
    from pyVmomi import vim

    cluster = find(si, vim.ClusterComputeResource, "vio-mgmt")
    rules = {rule.name: sorted(vm.name for vm in rule.vm) for rule in cluster.configurationEx.rule}
    assert rules["vio-lab-ha-database-anti-affinity"] == sorted(vm.name for vm in databases)
    assert set(result.rules) == {f"vio-lab-ha-{r}-anti-affinity" for r in ("loadbalancer", "controller", "database")}


def test_running_again_adopts_and_completes_a_half_created_deployment(vcsim, lab_inventory) -> None:
    si, inventory, nodes = _setup(vcsim, lab_inventory("lab-tiny"))
    first = provision(si, inventory, nodes)
    assert first.created == ["controller01"]
    again = provision(si, inventory, nodes)
    assert again.created == [] and again.adopted == ["controller01"] and again.powered_on == []
    assert again.vm_ids == first.vm_ids

    si, inventory, nodes = _setup(vcsim, lab_inventory("lab-ha"))
    provision(si, inventory, nodes)
    lost = _vm(si, "vio-lab-ha-DB-1")
    wait_for_tasks(si, [lost.PowerOffVM_Task()])
    wait_for_tasks(si, [lost.Destroy_Task()])
    off = _vm(si, "vio-lab-ha-Controller-0")
    wait_for_tasks(si, [off.PowerOffVM_Task()])
    resumed = provision(si, inventory, nodes)
    assert resumed.created == ["database02"]
    assert resumed.powered_on == ["controller01", "database02"]


def test_wrong_password_is_one_clear_error(vcsim, lab_inventory) -> None:
    with pytest.raises(BadInput, match=r"refused the login of administrator@vsphere\.local"):
        _setup(vcsim, lab_inventory("lab-tiny"), password="not-the-password")


def test_missing_template_is_named(vcsim, lab_inventory) -> None:
    si, inventory, nodes = _setup(vcsim, lab_inventory("lab-tiny", lambda d: d["vcenter"].update(template="gold")))
    with pytest.raises(BadInput, match=r"vCenter has no template VM named 'gold'"):
        provision(si, inventory, nodes)


def test_full_datastore_is_refused_before_any_clone(vcsim, lab_inventory) -> None:
    def huge(data):
        data["roles"]["database"]["disk_gb"] = 65536

    si, inventory, nodes = _setup(vcsim, lab_inventory("lab-ha", huge))
    with pytest.raises(BadInput, match=r"datastore vio-ds\d has \d+ GB free"):
        provision(si, inventory, nodes)
    from pyVmomi import vim

    assert find(si, vim.Folder, "vio-lab-ha").childEntity == []


def test_ip_already_in_use_is_refused(vcsim, lab_inventory) -> None:
    si, inventory, nodes = _setup(vcsim, lab_inventory("lab-tiny"))
    provision(si, inventory, nodes)

    def same_pool(data):
        data["name"] = "other"
        data["vcenter"]["folder"] = "other"

    si, other, other_nodes = _setup(vcsim, lab_inventory("lab-tiny", same_pool))
    expected = r"10\.203\.0\.50, planned for controller01, is already used by the VM vio-lab-tiny"
    with pytest.raises(BadInput, match=expected):
        provision(si, other, other_nodes)


def test_a_node_rebuilt_on_its_own_goes_back_into_its_roles_rule(vcsim, lab_inventory) -> None:
    from pyVmomi import vim

    from viocli.vsphere.remove import destroy_vm

    si, inventory, nodes = _setup(vcsim, lab_inventory("lab-ha"))
    provision(si, inventory, nodes)
    lost = _vm(si, "vio-lab-ha-DB-1")
    assert destroy_vm(si, lost, label="database02") is True
    database02 = next(n for n in nodes if n.name == "database02")
    rebuilt = provision(si, inventory, [database02], peers=nodes)
    assert rebuilt.created == ["database02"] and rebuilt.adopted == []
    new = _vm(si, "vio-lab-ha-DB-1")
    assert new._moId != lost._moId and str(new.runtime.powerState) == "poweredOn"
    assert str(database02.mgmt_ip) in {a for nic in new.guest.net for a in nic.ipAddress}
    cluster = find(si, vim.ClusterComputeResource, "vio-mgmt")
    rules = {rule.name: {vm._moId for vm in rule.vm} for rule in cluster.configurationEx.rule}
    members = {_vm(si, n.vm_name)._moId for n in nodes if n.role == "database"}
    assert new._moId in members and rules["vio-lab-ha-database-anti-affinity"] == members
    # only the new clone was powered on: the other VMs were left as they were
    assert rebuilt.powered_on == ["database02"]
