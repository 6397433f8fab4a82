"""vSphere snapshots of a deployment's VMs, named after a patch: take them before touching the VMs,
revert a VM to its snapshot when the patch broke it, remove them once the patch is done.

Snapshots are taken without memory and without quiescing. Every task on many VMs is started at once
and all of them are followed through the property collector
(:func:`viocli.vsphere.tasks.task_outcomes`); a failure names the node, its VM and the vSphere
fault, and the other VMs' tasks still run to the end. Each call can be run again after a crash: a VM
that already has the snapshot keeps it, a VM without it has nothing to remove.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from viocli.errors import OperationFailed
from viocli.vsphere import power
from viocli.vsphere.power import POWERED_ON, NodeVM
from viocli.vsphere.tasks import fault_text, task_outcomes

SNAPSHOT_TIMEOUT = 600.0
HINT = "look at the VM's tasks and events in vCenter, fix the cause, then run the same command again"


def find_snapshot(vm: Any, name: str) -> Any | None:
    """The snapshot (``vim.vm.Snapshot``) called ``name`` in ``vm``'s snapshot tree, depth first; None if absent."""
    info = vm.snapshot
    if info is None:
        return None
    return _find(info.rootSnapshotList, name)


def _find(trees: Iterable[Any] | None, name: str) -> Any | None:
    for tree in trees or []:
        if tree.name == name:
            return tree.snapshot
        found = _find(tree.childSnapshotList, name)
        if found is not None:
            return found
    return None


def take_snapshots(
    si: Any, vms: Sequence[NodeVM], name: str, description: str, *, timeout: float = SNAPSHOT_TIMEOUT
) -> dict[str, Any]:
    """Snapshot every VM (no memory, no quiescing), all at once; return node name -> its snapshot.

    A VM that already has a snapshot called ``name`` keeps it and is not snapshotted again (a patch
    resumed after a crash). When any VM could not be snapshotted, raise OperationFailed naming each
    such VM and vCenter's fault, once the other VMs' tasks have finished.
    """
    from pyVmomi import vim, vmodl

    _refuse_missing(vms, f"take snapshot {name!r} of")
    snapshots: dict[str, Any] = {}
    failures: list[tuple[NodeVM, Any]] = []
    started: list[tuple[NodeVM, Any]] = []
    for target in vms:
        try:
            existing = find_snapshot(target.vm, name)
            if existing is not None:
                snapshots[target.node] = existing
                continue
            task = target.vm.CreateSnapshot_Task(name=name, description=description, memory=False, quiesce=False)
        except vmodl.MethodFault as fault:  # refused at once: the VM is gone, no permission
            failures.append((target, fault))
        else:
            started.append((target, task))
    outcomes = task_outcomes(si, [task for _, task in started], timeout=timeout)
    for (target, _), outcome in zip(started, outcomes, strict=True):
        if outcome.failed:
            failures.append((target, outcome.fault))
            continue
        snapshot = outcome.result if isinstance(outcome.result, vim.vm.Snapshot) else None
        try:
            snapshots[target.node] = snapshot if snapshot is not None else find_snapshot(target.vm, name)
        except vmodl.MethodFault as fault:
            failures.append((target, fault))
    _raise(f"cannot take snapshot {name!r} of", failures)
    return {target.node: snapshots[target.node] for target in vms}


def revert_to_snapshot(
    si: Any, vm: NodeVM, name: str, *, power_on: bool = True, timeout: float = SNAPSHOT_TIMEOUT
) -> None:
    """Revert ``vm`` to its snapshot called ``name``; then power it on unless ``power_on`` is False.

    OperationFailed when the VM or the snapshot does not exist or the revert fails.
    """
    from pyVmomi import vmodl

    what = f"cannot revert {vm.describe()} to snapshot {name!r}"
    if vm.vm is None:
        raise OperationFailed(f"{what}: vCenter has no such VM", hint="rebuild the node: sudo viocli recover -n NODE")
    try:
        snapshot = find_snapshot(vm.vm, name)
    except vmodl.MethodFault as fault:
        raise OperationFailed(f"{what}: {fault_text(fault)}", hint=HINT) from None
    if snapshot is None:
        raise OperationFailed(
            f"{what}: the VM has no snapshot of that name",
            hint="look at the VM's snapshots in vCenter; restore the node by hand or rebuild it",
        )
    try:
        (outcome,) = task_outcomes(si, [snapshot.RevertToSnapshot_Task()], timeout=timeout)
        fault = outcome.fault
        state = str(vm.vm.runtime.powerState) if fault is None else None
    except vmodl.MethodFault as refused:
        fault, state = refused, None
    if fault is not None:
        raise OperationFailed(f"{what}: {fault_text(fault)}", hint=HINT)
    # vCenter leaves a VM reverted to a snapshot without memory powered off; the simulator keeps the
    # power state the VM had. Power it on in either case when asked to.
    if power_on and state != POWERED_ON:
        power.power_on(si, [NodeVM(vm.node, vm.vm_name, vm.vm, state)], timeout=timeout)


def remove_snapshots(si: Any, vms: Sequence[NodeVM], name: str, *, timeout: float = SNAPSHOT_TIMEOUT) -> list[str]:
    """Remove the snapshot called ``name`` (not its children; disks consolidated) from every VM that has it.

    All at once; return the nodes whose snapshot was removed. VMs without that snapshot, or without a
    VM at all, are skipped. When a removal fails, raise OperationFailed naming each such VM and
    vCenter's fault, once the others have finished.
    """
    from pyVmomi import vmodl

    failures: list[tuple[NodeVM, Any]] = []
    started: list[tuple[NodeVM, Any]] = []
    for target in vms:
        if target.vm is None:
            continue
        try:
            snapshot = find_snapshot(target.vm, name)
            if snapshot is None:
                continue
            task = snapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True)
        except vmodl.MethodFault as fault:
            if not _gone(fault):  # the VM or its snapshot was deleted meanwhile: nothing to remove
                failures.append((target, fault))
        else:
            started.append((target, task))
    outcomes = task_outcomes(si, [task for _, task in started], timeout=timeout)
    failures += [(target, o.fault) for (target, _), o in zip(started, outcomes, strict=True) if o.failed]
    _raise(f"cannot remove snapshot {name!r} of", failures)
    failed = {target.node for target, _ in failures}
    return sorted(target.node for target, _ in started if target.node not in failed)


def _refuse_missing(vms: Iterable[NodeVM], verb: str) -> None:
    missing = [v for v in vms if v.vm is None]
    if missing:
        raise OperationFailed(
            f"cannot {verb} {', '.join(v.describe() for v in missing)}: vCenter has no such VM",
            hint="rebuild the node: sudo viocli recover -n NODE",
        )


def _raise(what: str, failures: list[tuple[NodeVM, Any]]) -> None:
    """OperationFailed naming every failed VM and its fault (the first in the message, all in details)."""
    if not failures:
        return
    lines = [f"{t.describe()}: {fault_text(f)}" for t, f in failures]
    first = f"{what} {lines[0]}"
    raise OperationFailed(
        first if len(lines) == 1 else f"{first} (and {len(lines) - 1} more VMs)",
        hint=HINT,
        details=lines if len(lines) > 1 else [],
    )


def _gone(fault: Any) -> bool:
    from pyVmomi import vmodl

    return isinstance(fault, vmodl.fault.ManagedObjectNotFound)
