"""VerifyVMPowerState: every node's VM is powered on in vCenter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from viocli.errors import ViocliError
from viocli.health import actions
from viocli.health.context import StatusContext
from viocli.health.result import Finding, Result, Status, conclude
from viocli.inventory.topology import Node

POWER = "VerifyVMPowerState"


def power_states(
    si: Any, datacenter: str, nodes: list[Node], vm_ids: Mapping[str, str | None]
) -> dict[str, str | None]:
    """node name -> its VM's ``runtime.powerState`` (None: no such VM), read in one property-collector call.

    A VM is the one recorded in the state store (``vm_id``, its managed object id), else the one with
    the node's VM name in the datacenter.
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
    by_id: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for item in objects:
        props = {p.name: p.val for p in item.propSet}
        state = str(props.get("runtime.powerState"))
        by_id[item.obj._moId] = state
        by_name.setdefault(str(props.get("name")), []).append(state)
    states: dict[str, str | None] = {}
    for node in nodes:
        vm_id = vm_ids.get(node.name)
        if vm_id and vm_id in by_id:
            states[node.name] = by_id[vm_id]
        elif len(by_name.get(node.vm_name, [])) == 1:
            states[node.name] = by_name[node.vm_name][0]
        else:
            states[node.name] = None
    return states


def verify_vm_power_state(ctx: StatusContext) -> Result:
    """Every node's VM exists in vCenter and is poweredOn."""
    vc = ctx.model.vcenter
    try:
        states = ctx.power_states()
    except ViocliError as error:
        return conclude(
            POWER,
            [Finding(Status.FAILURE, error.message, (), error.hint or f"check vCenter {vc.host}:{vc.port}")],
            ok="",
        )
    except TimeoutError as error:
        return conclude(
            POWER,
            [Finding(Status.FAILURE, f"vCenter {vc.host}:{vc.port}: {error}", (), "check vCenter and the network")],
            ok="",
        )
    findings = []
    details = []
    for node in ctx.nodes:
        state = states.get(node.name)
        details.append(f"{node.name} ({node.vm_name}): {state or 'no VM'}")
        if state is None:
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{node.name}: vCenter has no VM {node.vm_name} in datacenter {vc.datacenter}",
                    (node.name,),
                    actions.recover(node.name, ctx.deployment),
                )
            )
        elif state != "poweredOn":
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{node.name}: VM {node.vm_name} is {state}",
                    (node.name,),
                    actions.start_deployment(ctx.deployment),
                )
            )
    return conclude(POWER, findings, ok=f"all {len(ctx.nodes)} VMs are poweredOn", details=details)
