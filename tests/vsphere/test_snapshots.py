"""Patch snapshots against the vCenter simulator: taken on many VMs at once and only once per name,
found depth first, a VM reverted to one and powered on, removed (children kept) and removed again as a
no-op; failures name the node, the VM, the snapshot and the fault."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from viocli.errors import EXIT_FAILED, OperationFailed
from viocli.vsphere import snapshots
from viocli.vsphere.power import NodeVM, find_vms
from viocli.vsphere.snapshots import find_snapshot, remove_snapshots, revert_to_snapshot, take_snapshots
from viocli.vsphere.tasks import wait_for_tasks

pytestmark = pytest.mark.vsphere

NODES = ("database01", "database02", "database03")
PATCH = "viocli-patch-2024.1"


def _vms(si: Any, deployment, vm_ids, *nodes: str) -> list[NodeVM]:
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    return [found[n] for n in nodes]


def _names(vm: Any) -> list[str]:
    """The VM's snapshot names, depth first."""

    def walk(trees) -> list[str]:
        return [n for t in trees or [] for n in [t.name, *walk(t.childSnapshotList)]]

    info = vm.snapshot
    return walk(info.rootSnapshotList) if info is not None else []


def _counting_waits(monkeypatch) -> list[int]:
    waits: list[int] = []
    real = snapshots.task_outcomes

    def counting(si_, tasks, **kwargs):
        waits.append(len(tasks))
        return real(si_, tasks, **kwargs)

    monkeypatch.setattr(snapshots, "task_outcomes", counting)
    return waits


def test_take_on_every_vm_at_once_find_and_take_again_is_a_no_op(deployed, monkeypatch) -> None:
    si, deployment, vm_ids = deployed
    from pyVmomi import vim

    vms = _vms(si, deployment, vm_ids, *NODES)
    assert find_snapshot(vms[0].vm, PATCH) is None, "a VM without snapshots"
    waits = _counting_waits(monkeypatch)

    taken = take_snapshots(si, vms, PATCH, "before patch 2024.1")

    assert waits == [3], "three tasks started, then one wait for all of them"
    assert list(taken) == list(NODES)
    for target in vms:
        snapshot = taken[target.node]
        assert isinstance(snapshot, vim.vm.Snapshot)
        assert find_snapshot(target.vm, PATCH) == snapshot
        (tree,) = target.vm.snapshot.rootSnapshotList
        assert (tree.name, tree.description, tree.quiesced) == (PATCH, "before patch 2024.1", False)
        assert tree.snapshot == snapshot
    assert find_snapshot(vms[0].vm, "no-such-snapshot") is None

    # Resumed after a crash: database03 was not snapshotted yet, the others keep theirs.
    wait_for_tasks(si, [taken["database03"].RemoveSnapshot_Task(removeChildren=False)])
    again = take_snapshots(si, vms, PATCH, "before patch 2024.1")
    assert waits == [3, 1]
    assert again["database01"] == taken["database01"] and again["database02"] == taken["database02"]
    assert again["database03"] != taken["database03"]
    assert {n: _names(v.vm) for n, v in zip(NODES, vms, strict=True)} == {n: [PATCH] for n in NODES}


def test_find_snapshot_searches_the_tree_depth_first(deployed) -> None:
    si, deployment, vm_ids = deployed
    (target,) = _vms(si, deployment, vm_ids, "controller01")
    vm = target.vm
    for name in ("root", "child", "grandchild"):  # each the child of the current one
        wait_for_tasks(si, [vm.CreateSnapshot_Task(name=name, memory=False, quiesce=False)])
    root = vm.snapshot.rootSnapshotList[0]
    wait_for_tasks(si, [root.snapshot.RevertToSnapshot_Task()])
    wait_for_tasks(si, [vm.CreateSnapshot_Task(name="sibling", memory=False, quiesce=False)])
    assert _names(vm) == ["root", "child", "grandchild", "sibling"]

    grandchild = root.childSnapshotList[0].childSnapshotList[0].snapshot
    assert find_snapshot(vm, "grandchild") == grandchild
    assert find_snapshot(vm, "sibling") == vm.snapshot.rootSnapshotList[0].childSnapshotList[1].snapshot
    assert find_snapshot(vm, "root") == root.snapshot


def test_the_simulator_keeps_the_power_state_on_revert(deployed) -> None:
    """vCenter powers off a VM reverted to a snapshot taken without memory; the simulator does not
    touch the power state (it only moves currentSnapshot): revert_to_snapshot must handle both."""
    si, deployment, vm_ids = deployed
    on, off = _vms(si, deployment, vm_ids, "database01", "database02")
    wait_for_tasks(si, [off.vm.PowerOffVM_Task()])
    taken = take_snapshots(si, [on, off], PATCH, "")
    wait_for_tasks(si, [off.vm.PowerOnVM_Task(), on.vm.PowerOffVM_Task()])

    wait_for_tasks(si, [taken["database01"].RevertToSnapshot_Task(), taken["database02"].RevertToSnapshot_Task()])

    assert str(on.vm.runtime.powerState) == "poweredOff", "off after the snapshot: still off after the revert"
    assert str(off.vm.runtime.powerState) == "poweredOn", "on after the snapshot: still on after the revert"


def test_revert_to_the_snapshot_then_power_on(deployed, monkeypatch) -> None:
    si, deployment, vm_ids = deployed
    running, stopped, kept_off = _vms(si, deployment, vm_ids, *NODES)
    take_snapshots(si, [running, stopped, kept_off], PATCH, "before patch")
    for target in (running, stopped, kept_off):  # the patch went on from there
        wait_for_tasks(si, [target.vm.CreateSnapshot_Task(name="later", memory=False, quiesce=False)])
    # As vCenter leaves a VM reverted to a snapshot without memory (the simulator keeps the power state).
    wait_for_tasks(si, [stopped.vm.PowerOffVM_Task(), kept_off.vm.PowerOffVM_Task()])
    power_ons: list[list[str]] = []
    real = snapshots.power.power_on

    def recording(si_, vms, **kwargs):
        vms = list(vms)
        power_ons.append([v.node for v in vms])
        return real(si_, vms, **kwargs)

    monkeypatch.setattr(snapshots.power, "power_on", recording)

    for target in (running, stopped):
        revert_to_snapshot(si, target, PATCH)
        assert target.vm.snapshot.currentSnapshot == find_snapshot(target.vm, PATCH)
        assert str(target.vm.runtime.powerState) == "poweredOn"
    assert power_ons == [["database02"]], "only the VM that was off is powered on"

    revert_to_snapshot(si, kept_off, PATCH, power_on=False)
    assert kept_off.vm.snapshot.currentSnapshot == find_snapshot(kept_off.vm, PATCH)
    assert str(kept_off.vm.runtime.powerState) == "poweredOff"
    assert _names(kept_off.vm) == [PATCH, "later"], "a revert keeps the snapshots"


def test_remove_from_every_vm_that_has_it_then_again_is_a_no_op(deployed, monkeypatch) -> None:
    si, deployment, vm_ids = deployed
    vms = _vms(si, deployment, vm_ids, *NODES, "controller01")
    take_snapshots(si, vms[:3], PATCH, "before patch")
    first = vms[0].vm
    wait_for_tasks(si, [first.CreateSnapshot_Task(name="later", memory=False, quiesce=False)])
    waits = _counting_waits(monkeypatch)
    gone = NodeVM("controller02", "vio-lab-ha-Controller-1")  # no VM: skipped

    removed = remove_snapshots(si, [*vms, gone], PATCH)

    assert removed == list(NODES), "controller01 has no such snapshot"
    assert waits == [3]
    assert all(find_snapshot(v.vm, PATCH) is None for v in vms)
    assert _names(first) == ["later"], "the snapshot's children are kept"
    assert all(v.vm.snapshot is None for v in vms[1:]), "no snapshot left on the others"

    assert remove_snapshots(si, [*vms, gone], PATCH) == []
    assert waits == [3, 0]


def test_a_missing_snapshot_or_vm_on_revert_fails_naming_them(deployed) -> None:
    si, deployment, vm_ids = deployed
    (target,) = _vms(si, deployment, vm_ids, "controller02")

    with pytest.raises(OperationFailed) as caught:
        revert_to_snapshot(si, target, PATCH)
    error = caught.value
    assert error.exit_code == EXIT_FAILED == 1
    assert error.message == (
        f"cannot revert controller02 (VM vio-lab-ha-Controller-1) to snapshot '{PATCH}': "
        "the VM has no snapshot of that name"
    )

    nothing = NodeVM("controller02", "vio-lab-ha-Controller-1")
    with pytest.raises(
        OperationFailed, match=r"^cannot revert controller02 \(VM .*\) to snapshot '.*': vCenter has no"
    ):
        revert_to_snapshot(si, nothing, PATCH)
    with pytest.raises(OperationFailed, match=r"controller02 \(VM vio-lab-ha-Controller-1\): vCenter has no such VM"):
        take_snapshots(si, [nothing], PATCH, "")


def test_take_failures_name_each_vm_and_the_fault_and_the_others_are_snapshotted(deployed) -> None:
    si, deployment, vm_ids = deployed
    vms = _vms(si, deployment, vm_ids, *NODES)
    for target in vms[1:]:
        wait_for_tasks(si, [target.vm.PowerOffVM_Task()])
        wait_for_tasks(si, [target.vm.Destroy_Task()])  # deleted since it was found

    with pytest.raises(OperationFailed) as caught:
        take_snapshots(si, vms, PATCH, "")
    error = caught.value
    assert error.message.startswith(f"cannot take snapshot '{PATCH}' of database02 (VM vio-lab-ha-DB-1): ")
    assert "ManagedObjectNotFound" in error.message and error.message.endswith("(and 1 more VMs)")
    assert error.details[1].startswith("database03 (VM vio-lab-ha-DB-2): ManagedObjectNotFound")
    assert _names(vms[0].vm) == [PATCH], "the VM still there was snapshotted all the same"


def test_a_failed_task_names_its_vm_and_vcenters_fault_after_the_others_finished(deployed, monkeypatch) -> None:
    si, deployment, vm_ids = deployed
    from pyVmomi import vmodl

    vms = _vms(si, deployment, vm_ids, *NODES)
    real = snapshots.task_outcomes

    def second_fails(si_, tasks, **kwargs):  # the simulator's snapshot tasks never fail
        outcomes = real(si_, tasks, **kwargs)
        fault = vmodl.fault.SystemError(msg="No space left on device", reason="disk full")
        return [replace(o, fault=fault) if i == 1 else o for i, o in enumerate(outcomes)]

    monkeypatch.setattr(snapshots, "task_outcomes", second_fails)
    with pytest.raises(OperationFailed) as caught:
        take_snapshots(si, vms, PATCH, "")
    assert caught.value.message == (
        f"cannot take snapshot '{PATCH}' of database02 (VM vio-lab-ha-DB-1): SystemError: No space left on device"
    )
    assert caught.value.details == []
    assert [_names(v.vm) for v in vms] == [[PATCH]] * 3, "every task ran to its end"
