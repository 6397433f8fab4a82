"""Powering a deployment's VMs on and off against the vCenter simulator: only what needs it, all at
once, failures naming the VM and the fault; and ``deployment start|stop`` driving the simulator's VMs
(with the playbooks, the SSH wait and the health collectors faked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from tests.unit.test_command_playbooks import FakeRunner
from viocli.errors import OperationFailed
from viocli.health.result import Result, Status
from viocli.lab import simulator
from viocli.ops import lifecycle
from viocli.ops import status as ops_status
from viocli.ops.status import StatusReport
from viocli.settings import load_settings
from viocli.state.store import StateStore
from viocli.vsphere import power
from viocli.vsphere.objects import find
from viocli.vsphere.power import NodeVM, find_vms, power_off, power_on
from viocli.vsphere.tasks import wait_for_tasks

pytestmark = pytest.mark.vsphere

REPO = Path(__file__).resolve().parents[2]


def _states(si: Any, deployment, vm_ids) -> dict[str, str | None]:
    return {n: v.power_state for n, v in find_vms(si, "vio-dc", deployment.nodes, vm_ids).items()}


def test_find_vms_by_recorded_id_else_by_name(deployed) -> None:
    si, deployment, vm_ids = deployed
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    assert {n: v.vm_id for n, v in found.items()} == vm_ids
    assert {v.power_state for v in found.values()} == {"poweredOn"}
    assert found["database02"].vm_name == "vio-lab-ha-DB-1"

    by_name = find_vms(si, "vio-dc", deployment.nodes, {"database02": "vm-999999"})  # stale or no id: by name
    assert {n: v.vm_id for n, v in by_name.items()} == vm_ids

    gone = found["database02"].vm
    wait_for_tasks(si, [gone.PowerOffVM_Task()])
    wait_for_tasks(si, [gone.Destroy_Task()])
    after = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    assert after["database02"].vm is None and after["database02"].power_state is None
    assert after["database01"].power_state == "poweredOn"


def test_power_on_and_off_only_what_needs_it_with_one_wait_for_all(deployed, monkeypatch) -> None:
    si, deployment, vm_ids = deployed
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    wait_for_tasks(si, [found[n].vm.PowerOffVM_Task() for n in ("controller02", "database01", "compute02")])

    waits: list[int] = []
    real = power.task_outcomes

    def counting(si_, tasks, **kwargs):
        waits.append(len(tasks))
        return real(si_, tasks, **kwargs)

    monkeypatch.setattr(power, "task_outcomes", counting)
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    assert power_on(si, found.values()) == ["compute02", "controller02", "database01"]
    assert waits == [3], "three tasks started, then one wait for all of them"
    assert set(_states(si, deployment, vm_ids).values()) == {"poweredOn"}

    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    assert power_off(si, found.values()) == sorted(vm_ids)
    assert waits == [3, 9]
    assert set(_states(si, deployment, vm_ids).values()) == {"poweredOff"}
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    assert power_off(si, found.values()) == [] and waits[-1] == 0, "VMs already off are left alone"


def test_a_state_that_changed_since_it_was_read_is_not_a_failure(deployed) -> None:
    si, deployment, vm_ids = deployed
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)["controller01"]
    stale = NodeVM(found.node, found.vm_name, found.vm, "poweredOff")  # it is on: the task fails InvalidPowerState
    assert power_on(si, [stale]) == ["controller01"]
    assert _states(si, deployment, vm_ids)["controller01"] == "poweredOn"


def test_failures_name_the_node_the_vm_and_the_fault_and_the_others_still_run(deployed) -> None:
    si, deployment, vm_ids = deployed
    from pyVmomi import vim

    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    wait_for_tasks(si, [found[n].vm.PowerOffVM_Task() for n in ("database01", "database02", "database03")])
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    template = find(si, vim.VirtualMachine, simulator.TEMPLATE)
    gone = found["database03"].vm
    wait_for_tasks(si, [gone.Destroy_Task()])
    targets = [
        found["database01"],
        NodeVM("database02", simulator.TEMPLATE, template, "poweredOff"),  # a template never powers on
        found["database03"],  # destroyed since it was found
    ]
    with pytest.raises(OperationFailed) as caught:
        power_on(si, targets)
    error = caught.value
    assert error.message.startswith("cannot power on database02 (VM vio-template): InvalidState: ")
    assert "cannot powerOn a template" in error.message
    assert error.message.endswith("(and 1 more VMs)")
    assert error.details[1].startswith("database03 (VM vio-lab-ha-DB-2): ManagedObjectNotFound")
    assert _states(si, deployment, vm_ids)["database01"] == "poweredOn", "the good VM was powered on all the same"

    with pytest.raises(OperationFailed, match=r"cannot power off database03 \(VM vio-lab-ha-DB-2\): vCenter has no"):
        power_off(si, [NodeVM("database03", "vio-lab-ha-DB-2")])


# --- deployment start|stop on the simulator's VMs -------------------------------------------------
def _healthy(settings, name) -> StatusReport:
    return StatusReport(name, [Result("VerifyVMPowerState", Status.SUCCESS, [], "all VMs are poweredOn")], 0.1)


def test_deployment_stop_then_start_power_the_vms_in_vcenter(deployed, monkeypatch) -> None:
    si, deployment, vm_ids = deployed
    runner = FakeRunner()
    monkeypatch.setattr(ansible_runner, "run", runner)
    monkeypatch.setenv("VIOCLI_PLAYBOOKS_DIR", str(REPO / "playbooks"))
    monkeypatch.setattr(lifecycle, "wait_for_ssh", lambda addresses: None)
    monkeypatch.setattr(ops_status, "deployment_status", _healthy)
    settings = load_settings()

    stopped = lifecycle.stop(settings, deployment.name, confirm=lambda lines: True)
    assert stopped.powered_off == sorted(vm_ids)
    assert set(_states(si, deployment, vm_ids).values()) == {"poweredOff"}
    again = lifecycle.stop(settings, deployment.name, confirm=lambda lines: pytest.fail("asked"))
    assert again.already_stopped

    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    wait_for_tasks(si, [found["loadbalancer01"].vm.PowerOnVM_Task()])  # someone powered one on meanwhile
    started = lifecycle.start(settings, deployment.name)
    assert started.powered_on == sorted(n for n in vm_ids if n != "loadbalancer01")
    assert set(_states(si, deployment, vm_ids).values()) == {"poweredOn"}
    assert [c["playbook"] for c in runner.calls] == ["stop.yml", "start.yml"]
    store = StateStore.open_readonly(settings.db_path)
    assert store.deployment(deployment.name).status == "running"
    store.close()
