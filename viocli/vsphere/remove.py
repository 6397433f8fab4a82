"""Remove what provisioning made: a node's VM (whatever is left of it), DRS rules, the VM folder.

Used by ``recover`` (the lost node's remains go before its VM is cloned again) and ``deployment
destroy``. Each step accepts that the object is already gone, so a command interrupted halfway
completes when run again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from viocli.vsphere.tasks import wait_for_tasks

# Task states of a task that has not ended yet.
UNFINISHED = ("queued", "running")


def _gone(error: Exception) -> bool:
    """The object no longer exists in vCenter (someone removed it meanwhile)."""
    from pyVmomi import vmodl

    return isinstance(error, vmodl.fault.ManagedObjectNotFound)


def destroy_vm(si: Any, vm: Any, *, label: str) -> bool:
    """Power off (hard) and delete ``vm`` with its disks; False when it was already gone.

    Tasks still running on the VM (a clone left behind by an interrupted command, a power
    operation) are waited for first: vCenter refuses to delete a VM that is busy.
    """
    from pyVmomi import vmodl

    try:
        busy = [t for t in (vm.recentTask or []) if str(t.info.state) in UNFINISHED]
        if busy:
            wait_for_tasks(si, busy, labels=[label] * len(busy))
        if str(vm.runtime.powerState) != "poweredOff":
            try:
                wait_for_tasks(si, [vm.PowerOffVM_Task()], labels=[label])
            except vmodl.MethodFault as fault:  # InvalidPowerState: it went off meanwhile
                if getattr(fault, "_wsdlName", "") != "InvalidPowerState":
                    raise
        wait_for_tasks(si, [vm.Destroy_Task()], labels=[label])
    except vmodl.MethodFault as error:
        if _gone(error):
            return False
        raise
    return True


def remove_rules(si: Any, cluster: Any, names: Iterable[str]) -> list[str]:
    """Delete the cluster's DRS rules called ``names``; return those that existed."""
    from pyVmomi import vim

    wanted = set(names)
    found = [rule for rule in (cluster.configurationEx.rule or []) if rule.name in wanted]
    if found:
        specs = [vim.cluster.RuleSpec(operation="remove", removeKey=rule.key) for rule in found]
        spec = vim.cluster.ConfigSpecEx(rulesSpec=specs)
        wait_for_tasks(si, [cluster.ReconfigureComputeResource_Task(spec=spec, modify=True)])
    return sorted(rule.name for rule in found)


def remove_folder(si: Any, folder: Any) -> list[str]:
    """Delete ``folder`` if it is empty; else leave it and return the names of what it still holds."""
    from pyVmomi import vmodl

    try:
        left = [child.name for child in folder.childEntity]
        if left:
            return sorted(left)
        wait_for_tasks(si, [folder.Destroy_Task()], labels=[f"folder {folder.name}"])
    except vmodl.MethodFault as error:
        if not _gone(error):
            raise
    return []
