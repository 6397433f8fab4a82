"""Find a deployment's VMs and power them on or off: every task started at once, all of them followed
through the property collector (:func:`viocli.vsphere.tasks.task_outcomes`).

A VM already in the wanted state is left alone. Every failure names the node, its VM and the vSphere
fault, and the other VMs' tasks still run to the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from viocli.errors import OperationFailed
from viocli.inventory.topology import Node
from viocli.vsphere.tasks import fault_text, task_outcomes

POWERED_ON = "poweredOn"
POWERED_OFF = "poweredOff"
POWER_TIMEOUT = 600.0


@dataclass(frozen=True)
class NodeVM:
    """A node's VM as vCenter has it; ``vm`` is None when vCenter has no such VM."""

    node: str
    vm_name: str
    vm: Any = None
    power_state: str | None = None

    @property
    def vm_id(self) -> str | None:
        return self.vm._moId if self.vm is not None else None

    def describe(self) -> str:
        return f"{self.node} (VM {self.vm_name})"


def find_vms(si: Any, datacenter: str, nodes: Iterable[Node], vm_ids: Mapping[str, str | None]) -> dict[str, NodeVM]:
    """node name -> its VM and ``runtime.powerState``, read in one property-collector call.

    A node's VM is the one recorded in the state store (``vm_ids``: managed object ids), else the
    only VM with the node's VM name in the datacenter; with neither, ``vm`` is None.
    """
    from pyVmomi import vim, vmodl

    from viocli.vsphere.objects import find

    content = si.RetrieveContent()
    dc = find(si, vim.Datacenter, datacenter, what="datacenter")
    view = content.viewManager.CreateContainerView(dc.vmFolder, [vim.VirtualMachine], True)
    pc = vmodl.query.PropertyCollector
    try:
        spec = pc.FilterSpec(
            objectSet=[
                pc.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[pc.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)],
                )
            ],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=["name", "runtime.powerState"])],
        )
        collector = content.propertyCollector
        page = collector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
        objects = []
        while page is not None:
            objects.extend(page.objects)
            page = collector.ContinueRetrievePropertiesEx(page.token) if page.token else None
    finally:
        view.Destroy()
    by_id: dict[str, tuple[Any, str]] = {}
    by_name: dict[str, list[tuple[Any, str]]] = {}
    for item in objects:
        props = {p.name: p.val for p in item.propSet}
        entry = (item.obj, str(props.get("runtime.powerState")))
        by_id[item.obj._moId] = entry
        by_name.setdefault(str(props.get("name")), []).append(entry)
    found: dict[str, NodeVM] = {}
    for node in nodes:
        vm_id = vm_ids.get(node.name)
        if vm_id and vm_id in by_id:
            entry: tuple[Any, str] | None = by_id[vm_id]
        elif len(by_name.get(node.vm_name, [])) == 1:
            entry = by_name[node.vm_name][0]
        else:
            entry = None
        found[node.name] = NodeVM(node.name, node.vm_name, *(entry or (None, None)))
    return found


def power_on(si: Any, vms: Iterable[NodeVM], *, timeout: float = POWER_TIMEOUT) -> list[str]:
    """Power on every VM that is not on, all at once; return the nodes powered on."""
    return _power(si, list(vms), POWERED_ON, timeout)


def power_off(si: Any, vms: Iterable[NodeVM], *, timeout: float = POWER_TIMEOUT) -> list[str]:
    """Power off (hard) every VM that is not off, all at once; return the nodes powered off."""
    return _power(si, list(vms), POWERED_OFF, timeout)


def _power(si: Any, vms: list[NodeVM], wanted: str, timeout: float) -> list[str]:
    from pyVmomi import vmodl

    verb = "power on" if wanted == POWERED_ON else "power off"
    missing = [v for v in vms if v.vm is None]
    if missing:
        raise OperationFailed(
            f"cannot {verb} {', '.join(v.describe() for v in missing)}: vCenter has no such VM",
            hint="rebuild the node: sudo viocli recover -n NODE",
        )
    todo = [v for v in vms if v.power_state != wanted]
    failures: list[tuple[NodeVM, Any]] = []
    started: list[tuple[NodeVM, Any]] = []
    for target in todo:
        try:
            task = target.vm.PowerOnVM_Task() if wanted == POWERED_ON else target.vm.PowerOffVM_Task()
        except vmodl.MethodFault as fault:  # refused at once: the VM is gone, a template, no permission
            failures.append((target, fault))
        else:
            started.append((target, task))
    outcomes = task_outcomes(si, [task for _, task in started], timeout=timeout)
    failures += [(target, o.fault) for (target, _), o in zip(started, outcomes, strict=True) if o.failed]
    # Someone else brought a VM to the wanted state meanwhile: that is not a failure.
    failures = [(t, f) for t, f in failures if not _already(t, f, wanted)]
    if failures:
        lines = [f"{t.describe()}: {fault_text(f)}" for t, f in failures]
        first = f"cannot {verb} {lines[0]}"
        raise OperationFailed(
            first if len(lines) == 1 else f"{first} (and {len(lines) - 1} more VMs)",
            hint="look at the VM's tasks and events in vCenter, fix the cause, then run the same command again",
            details=lines if len(lines) > 1 else [],
        )
    return sorted(t.node for t in todo)


def _already(target: NodeVM, fault: Any, wanted: str) -> bool:
    """The task failed because the VM is already in the wanted state."""
    from pyVmomi import vmodl

    if getattr(fault, "_wsdlName", "") != "InvalidPowerState":
        return False
    try:
        return str(target.vm.runtime.powerState) == wanted
    except vmodl.MethodFault:
        return False
