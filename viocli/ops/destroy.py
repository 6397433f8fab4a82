"""``deployment destroy``: delete a deployment's VMs, DRS rules and VM folder, then forget it on the OMS.

The deployment's VMs are its nodes' (inventory and state store), each the VM whose id the state
store recorded for the node, else the VM with the node's VM name inside the deployment's folder.
Nothing else is ever deleted: another VM in the folder stays, and so does the folder then.

vCenter goes first. Only once it holds nothing of the deployment does the OMS forget it: its rows
in the state store (one transaction), its private directory (secrets, PKI/TLS, known_hosts, runner
data), and its lock file. Every step accepts that its object is gone already, so running the
command again after an interruption finishes the job; a directory left behind with no deployment
in the state store is removed by ``destroy -d NAME`` alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viocli.errors import BadInput, NodesUnreachable, OperationFailed, Refused
from viocli.logsetup import get_logger
from viocli.ops.configure import existing_deployment
from viocli.ops.context import Deployment
from viocli.ops.lifecycle import vcenter_session
from viocli.ops.operation import Operation, operation
from viocli.runner.settings import close_ssh_masters
from viocli.settings import Settings
from viocli.state.lock import DeploymentLock
from viocli.state.store import StateStore
from viocli.vsphere.connection import VcenterUnreachable
from viocli.vsphere.objects import find
from viocli.vsphere.power import NodeVM, find_vms
from viocli.vsphere.provision import ANTI_AFFINITY_ROLES, rule_name
from viocli.vsphere.remove import destroy_vm, remove_folder, remove_rules
from viocli.vsphere.tasks import fault_text

RERUN_HINT = "fix the cause, then run the same command again: what is deleted already is skipped"
BACKUP_ADVICE = (
    "to keep its secrets and state, back up the OMS first: sudo viocli backup mgmt_server NFS_VOLUME "
    "(destroy leaves every backup on NFS alone)"
)


def _quiet(_text: str) -> None:
    """The default ``say``: progress goes nowhere."""


def rule_names(deployment: str) -> list[str]:
    """The DRS anti-affinity rules provisioning makes for ``deployment`` (one per replicated role)."""
    return [rule_name(deployment, role) for role in ANTI_AFFINITY_ROLES]


@dataclass
class Remains:
    """What vCenter still holds of a deployment; only ``vms``, ``rules`` and ``folder`` are deleted."""

    datacenter: str
    folder_name: str
    cluster_name: str
    vms: list[NodeVM] = field(default_factory=list)  # the deployment's VMs, in node order
    gone: list[NodeVM] = field(default_factory=list)  # nodes whose VM vCenter no longer has
    strangers: list[NodeVM] = field(default_factory=list)  # a node's VM name on a VM that is not the deployment's
    folder: Any = None  # the VM folder, None when it is gone
    others: list[str] = field(default_factory=list)  # what else the folder holds: never deleted
    cluster: Any = None  # None when vCenter has no such cluster (then it has no rules either)
    rules: list[str] = field(default_factory=list)  # the deployment's DRS rules still there


@dataclass
class Removed:
    """What :func:`remove_remains` deleted in vCenter."""

    vms: list[str] = field(default_factory=list)  # VM names
    rules: list[str] = field(default_factory=list)
    folder: str | None = None  # the folder deleted
    kept: list[str] = field(default_factory=list)  # what the folder still holds, when it stays


@dataclass
class Forgotten:
    """What the OMS forgot: the deployment's directory (None when there was none) and its rows."""

    directory: Path | None
    rows: dict[str, int]


@dataclass
class DestroyResult:
    deployment: str
    remains: Remains | None  # None: only a directory was left (no vCenter work)
    removed: Removed | None
    forgotten: Forgotten
    inventory_path: Path | None


# --- vCenter ------------------------------------------------------------------------------------
def find_remains(si: Any, deployment: Deployment, vm_ids: Mapping[str, str | None]) -> Remains:
    """The deployment's VMs, DRS rules and folder as vCenter has them now (read-only).

    ``vm_ids`` are the VM ids the state store recorded, node by node.
    """
    from pyVmomi import vim

    vc = deployment.loaded.model.vcenter
    remains = Remains(vc.datacenter, vc.folder or deployment.name, vc.management_cluster)
    datacenter = find(si, vim.Datacenter, vc.datacenter, what="datacenter")
    remains.folder = next(
        (c for c in datacenter.vmFolder.childEntity if isinstance(c, vim.Folder) and c.name == remains.folder_name),
        None,
    )
    folder_id = remains.folder._moId if remains.folder is not None else None
    for found in find_vms(si, vc.datacenter, deployment.nodes, vm_ids).values():
        if found.vm is None:
            remains.gone.append(found)
        elif found.vm_id == vm_ids.get(found.node) or getattr(found.vm.parent, "_moId", None) == folder_id:
            remains.vms.append(found)
        else:
            remains.strangers.append(found)
    if remains.folder is not None:
        ours = {found.vm_id for found in remains.vms}
        remains.others = sorted(child.name for child in remains.folder.childEntity if child._moId not in ours)
    try:
        remains.cluster = find(si, vim.ClusterComputeResource, vc.management_cluster, within=datacenter)
    except BadInput:
        return remains
    wanted = set(rule_names(deployment.name))
    remains.rules = sorted(rule.name for rule in remains.cluster.configurationEx.rule or [] if rule.name in wanted)
    return remains


def remove_remains(si: Any, remains: Remains, *, say: Callable[[str], None] = _quiet) -> Removed:
    """Delete the deployment's VMs (powered off first), then its DRS rules, then its folder if empty."""
    removed = Removed()
    for found in remains.vms:
        say(f"deleting VM {found.vm_name} ({found.node})")
        if destroy_vm(si, found.vm, label=f"{found.vm_name} ({found.node})"):
            removed.vms.append(found.vm_name)
    if remains.rules:
        say(f"deleting the DRS rules {', '.join(remains.rules)}")
        removed.rules = remove_rules(si, remains.cluster, remains.rules)
    if remains.folder is not None:
        removed.kept = remove_folder(si, remains.folder)
        if removed.kept:
            say(f"leaving the folder {remains.folder_name}: it holds {', '.join(removed.kept)}")
        else:
            removed.folder = remains.folder_name
    return removed


@contextmanager
def _vcenter_errors(deployment: Deployment) -> Iterator[None]:
    """vCenter's failures as viocli errors: not answering is exit 3, a refusal or a failed task exit 1."""
    from pyVmomi import vmodl

    vc = deployment.loaded.model.vcenter
    where = f"vCenter {vc.host}:{vc.port}"
    try:
        yield
    except VcenterUnreachable as error:
        raise NodesUnreachable(
            f"{error.message}; nothing of deployment {deployment.name} was deleted",
            hint=f"check that vCenter is up and vcenter.host/port in {deployment.loaded.path}, then run again",
        ) from None
    except OSError as error:
        raise NodesUnreachable(
            f"lost the connection to {where} while destroying {deployment.name}: {error}",
            hint="run the same command again once vCenter answers: what is deleted already is skipped",
        ) from None
    except vmodl.MethodFault as fault:
        raise OperationFailed(
            f"{where} refused a step of destroying {deployment.name}: {fault_text(fault)}", hint=RERUN_HINT
        ) from None
    except OperationFailed as error:
        raise OperationFailed(error.message, hint=error.hint or RERUN_HINT, details=error.details) from None


# --- the OMS ------------------------------------------------------------------------------------
def forget(settings: Settings, op: Operation, name: str) -> Forgotten:
    """Drop the deployment's rows, then its directory, then its lock file (still held: released after)."""
    rows = op.store.forget_deployment(name)
    directory = settings.deployment_dir(name)
    existed = directory.exists()
    try:
        if existed:
            close_ssh_masters(directory)  # their nodes are gone
            shutil.rmtree(directory)
    except OSError as error:
        raise OperationFailed(
            f"deployment {name} is gone from vCenter and the state store, but its directory {directory} "
            f"could not be removed: {error}",
            hint=f"run the same command again: sudo viocli deployment destroy -d {name}",
        ) from None
    DeploymentLock(settings.state_dir / "locks", name).remove()  # this process holds it (op)
    return Forgotten(directory if existed else None, rows)


def _known(settings: Settings, name: str) -> bool:
    """The state store has deployment ``name`` (read-only)."""
    reader = StateStore.open_readonly(settings.db_path)
    if reader is None:
        return False
    try:
        return reader.deployment(name) is not None
    finally:
        reader.close()


def _state_lines(settings: Settings, store: StateStore, name: str) -> list[str]:
    directory = settings.deployment_dir(name)
    if directory.is_dir():
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
        lines = [
            f"  the directory {directory} (the deployment's secrets, PKI/TLS, known_hosts, runner data): "
            f"{', '.join(entries) or 'empty'}"
        ]
    else:
        lines = [f"  the directory {directory}: already gone"]
    if store.deployment(name) is not None:
        lines.append(
            f"  its rows in the state store {settings.db_path}: the deployment, its {len(store.nodes(name))} "
            f"nodes, its operation history, its {len(store.backups(name))} backup catalog entries"
        )
    return lines


def _vcenter_lines(deployment: Deployment, remains: Remains) -> list[str]:
    vc = deployment.loaded.model.vcenter
    width = max((len(v.vm_name) for v in remains.vms + remains.gone + remains.strangers), default=0)
    lines = [f"in vCenter {vc.host} (datacenter {remains.datacenter}):"]
    lines += [f"  VM {v.vm_name:<{width}}  {v.node:<16} {v.power_state}" for v in remains.vms]
    lines += [f"  VM {v.vm_name:<{width}}  {v.node:<16} already gone" for v in remains.gone]
    lines += [
        f"  VM {v.vm_name:<{width}}  {v.node:<16} left alone: not in the folder {remains.folder_name} "
        "and not the VM viocli recorded for the node"
        for v in remains.strangers
    ]
    if remains.folder is None:
        lines.append(f"  VM folder {remains.folder_name}: already gone")
    elif remains.others:
        lines.append(
            f"  VM folder {remains.folder_name}: kept, it also holds {', '.join(remains.others)}, "
            "which are not the deployment's (left alone)"
        )
    else:
        lines.append(f"  VM folder {remains.folder_name}")
    if remains.cluster is None:
        lines.append(f"  DRS rules: none (vCenter has no cluster {remains.cluster_name})")
    else:
        lines.append(f"  DRS rules in cluster {remains.cluster_name}: {', '.join(remains.rules) or 'none left'}")
    return lines


def plan_lines(
    settings: Settings, store: StateStore, name: str, deployment: Deployment | None, remains: Remains | None
) -> list[str]:
    """What destroy deletes, shown before the operator types the deployment's name."""
    lines = [f"deployment {name} will be destroyed; this cannot be undone. It deletes:"]
    if deployment is not None and remains is not None:
        lines += _vcenter_lines(deployment, remains)
    else:
        lines.append(
            f"in vCenter: nothing (the state store has no deployment {name}; only its directory is left, "
            "from an interrupted destroy or secrets stored before deployment create)"
        )
    lines.append("on this OMS:")
    lines += _state_lines(settings, store, name)
    kept = f"the inventory file {deployment.loaded.path} and " if deployment is not None else ""
    lines.append(f"kept: {kept}every backup on NFS (only its catalog entry on this OMS goes)")
    lines.append(BACKUP_ADVICE)
    return lines


def _ask(confirm: Callable[[list[str], str], str], lines: list[str], name: str) -> None:
    """Refuse (exit 4, nothing changed) unless the operator types the deployment's name."""
    typed = confirm(lines, name).strip()
    if typed != name:
        why = f"{typed!r} is not its name" if typed else "no name typed"
        raise Refused(f"deployment destroy of {name} cancelled ({why}); nothing was changed")


def destroy(
    settings: Settings,
    name: str | None,
    *,
    confirm: Callable[[list[str], str], str],
    say: Callable[[str], None] = _quiet,
) -> DestroyResult:
    """Delete the deployment's VMs, DRS rules and folder in vCenter, then forget it on this OMS.

    ``confirm(lines, name)`` shows the plan and returns what the operator typed: anything but the
    deployment's name cancels (Refused, exit 4, nothing changed). vCenter not answering is exit 3,
    with the OMS's state untouched.
    """
    deployment = None
    if name is None or not settings.deployment_dir(name).is_dir() or _known(settings, name):
        deployment, _record = existing_deployment(settings, None, name, "destroy")
        name = deployment.name
    remains = removed = None
    with operation(settings, name, "deployment destroy") as op:
        if (op.store.deployment(name) is None) != (deployment is None):  # checked again under the lock
            raise Refused(
                f"deployment {name} was created or destroyed by another command meanwhile; nothing was changed",
                hint=f"look again: sudo viocli deployment destroy -d {name}",
            )
        if deployment is None:
            _ask(confirm, plan_lines(settings, op.store, name, None, None), name)
        else:
            say(f"logging in to vCenter {deployment.loaded.model.vcenter.host}")
            with _vcenter_errors(deployment), vcenter_session(settings, deployment) as si:
                vm_ids = {record.name: record.vm_id for record in op.store.nodes(name)}
                remains = find_remains(si, deployment, vm_ids)
                _ask(confirm, plan_lines(settings, op.store, name, deployment, remains), name)
                removed = remove_remains(si, remains, say=say)
        say(f"forgetting deployment {name} on this OMS")
        forgotten = forget(settings, op, name)
    get_logger().info("deployment %s destroyed: %s %s", name, removed, forgotten)
    return DestroyResult(name, remains, removed, forgotten, deployment.loaded.path if deployment else None)
