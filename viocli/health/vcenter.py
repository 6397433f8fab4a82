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
    the node's VM name in the datacenter (:func:`viocli.vsphere.power.find_vms`).
    """
    from viocli.vsphere.power import find_vms

    return {name: found.power_state for name, found in find_vms(si, datacenter, nodes, vm_ids).items()}


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
