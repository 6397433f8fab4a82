"""Provision a deployment's VMs: clone every node in parallel with guest customization, keep
anti-affinity, power on, and wait for each guest to report its IP, all through vSphere tasks and
property-collector updates.

Idempotent: a VM that already exists in the deployment's folder under the node's VM name is adopted,
not cloned again, so running it after a failure completes a half-created deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from viocli.errors import BadInput, OperationFailed
from viocli.inventory.model import Inventory
from viocli.inventory.topology import Node
from viocli.vsphere.clone import NicPlan, clone_spec
from viocli.vsphere.objects import find
from viocli.vsphere.tasks import wait_for_tasks
from viocli.vsphere.watch import watch

GIB = 1024**3
AUTHORIZED_KEY = "guestinfo.viocli.authorized_keys"
ANTI_AFFINITY_ROLES = ("loadbalancer", "controller", "database")


def rule_name(deployment: str, role: str) -> str:
    """The DRS anti-affinity rule that keeps ``deployment``'s ``role`` VMs on different hosts."""
    return f"{deployment}-{role}-anti-affinity"


@dataclass
class Placement:
    """The vCenter objects an inventory names, looked up once."""

    datacenter: Any
    cluster: Any
    datastores: dict[str, Any]
    mgmt_network: Any
    api_network: Any
    template: Any
    folder: Any


@dataclass
class ProvisionResult:
    """What provisioning did, node by node."""

    vm_ids: dict[str, str] = field(default_factory=dict)
    vms: dict[str, Any] = field(default_factory=dict, repr=False)
    created: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    powered_on: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


def locate(si: Any, inventory: Inventory) -> Placement:
    """Find everything the inventory names; the first missing object is named in a BadInput."""
    from pyVmomi import vim

    vc = inventory.vcenter
    datacenter = find(si, vim.Datacenter, vc.datacenter, what="datacenter")
    cluster = find(si, vim.ClusterComputeResource, vc.management_cluster, within=datacenter, what="cluster")
    datastores = {name: find(si, vim.Datastore, name, within=datacenter, what="datastore") for name in vc.datastores}
    networks = inventory.networks
    mgmt = find(si, vim.Network, networks.management.portgroup, within=datacenter, what="port group")
    api = find(si, vim.Network, networks.api.portgroup, within=datacenter, what="port group")
    template = find(si, vim.VirtualMachine, vc.template, within=datacenter, what="template VM")
    folder = ensure_folder(datacenter.vmFolder, vc.folder or inventory.name)
    return Placement(datacenter, cluster, datastores, mgmt, api, template, folder)


def ensure_folder(parent: Any, name: str) -> Any:
    """The VM folder ``name`` under ``parent``, created if missing."""
    from pyVmomi import vim

    for child in parent.childEntity:
        if isinstance(child, vim.Folder) and child.name == name:
            return child
    try:
        return parent.CreateFolder(name)
    except vim.fault.DuplicateName:  # created meanwhile by someone else
        return next(c for c in parent.childEntity if isinstance(c, vim.Folder) and c.name == name)


def _nic_plans(inventory: Inventory, node: Node, placement: Placement) -> list[NicPlan]:
    mgmt, api = inventory.networks.management, inventory.networks.api
    plans = [NicPlan(placement.mgmt_network, str(node.mgmt_ip), str(mgmt.cidr.netmask), str(mgmt.gateway))]
    if node.api_ip is not None:
        plans.append(NicPlan(placement.api_network, str(node.api_ip), str(api.cidr.netmask)))
    return plans


def _check_capacity(nodes: Iterable[Node], placement: Placement) -> None:
    """Refuse before cloning anything if a datastore cannot hold the nodes placed on it."""
    need: dict[str, int] = {}
    for node in nodes:
        need[node.datastore] = need.get(node.datastore, 0) + node.disk_gb * GIB
    for name, wanted in need.items():
        free = placement.datastores[name].summary.freeSpace
        if free is not None and free < wanted:
            raise BadInput(
                f"datastore {name} has {free / GIB:.0f} GB free; the nodes placed on it need {wanted / GIB:.0f} GB",
                hint="free space there or list more datastores in vcenter.datastores",
            )


def _addresses_in_use(si: Any, exclude: set[str]) -> dict[str, str]:
    """IP -> VM name for every VM outside ``exclude`` whose guest reports an address."""
    from pyVmomi import vim

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        used = {}
        for vm in view.view:
            if vm.name in exclude:
                continue
            for nic in vm.guest.net or []:
                for address in nic.ipAddress or []:
                    used[address] = vm.name
        return used
    finally:
        view.Destroy()


def _ensure_anti_affinity(
    si: Any, inventory: Inventory, nodes: list[Node], placement: Placement, vms: dict[str, Any]
) -> list[str]:
    """One DRS anti-affinity rule per replicated role (LB pair, controller pair, DB trio), holding
    exactly the role's VMs: a rule that names a VM no longer there (a rebuilt node) is edited."""
    from pyVmomi import vim

    existing = {rule.name: rule for rule in (placement.cluster.configurationEx.rule or [])}
    specs, names = [], []
    for role in ANTI_AFFINITY_ROLES:
        members = [vms[n.name] for n in nodes if n.role == role and n.name in vms]
        name = rule_name(inventory.name, role)
        if len(members) < 2:
            continue
        names.append(name)
        rule = existing.get(name)
        if rule is None:
            info = vim.cluster.AntiAffinityRuleSpec(name=name, enabled=True, mandatory=True, vm=members)
            specs.append(vim.cluster.RuleSpec(operation="add", info=info))
        elif {vm._moId for vm in rule.vm or []} != {vm._moId for vm in members}:
            info = vim.cluster.AntiAffinityRuleSpec(key=rule.key, name=name, enabled=True, mandatory=True, vm=members)
            specs.append(vim.cluster.RuleSpec(operation="edit", info=info))
    if specs:
        spec = vim.cluster.ConfigSpecEx(rulesSpec=specs)
        wait_for_tasks(si, [placement.cluster.ReconfigureComputeResource_Task(spec=spec, modify=True)])
    return names


def wait_for_guest_ips(si: Any, vms: dict[str, Any], expected: dict[str, str], timeout: float = 600) -> None:
    """Block until each VM's guest reports its expected IP, following guest.net updates."""
    from pyVmomi import vim

    by_id = {vm._moId: name for name, vm in vms.items()}
    waiting = set(vms)

    def late() -> OperationFailed:
        return OperationFailed(
            f"no guest IP reported within {timeout:.0f}s by: {', '.join(sorted(waiting))}",
            hint="check the VMs' consoles and that VMware Tools runs in the template",
        )

    for vm, values in watch(
        si, list(vms.values()), vim.VirtualMachine, ["guest.net"], timeout=timeout, on_timeout=late
    ):
        name = by_id[vm._moId]
        addresses = {a for nic in (values.get("guest.net") or []) for a in (nic.ipAddress or [])}
        if expected[name] in addresses:
            waiting.discard(name)
        if not waiting:
            break


def provision(
    si: Any,
    inventory: Inventory,
    nodes: list[Node],
    *,
    oms_public_key: str | None = None,
    say: Callable[[str], None] = lambda _text: None,
    peers: list[Node] | None = None,
) -> ProvisionResult:
    """Make every node's VM exist, run, and report its IP; adopt VMs that are already there.

    ``peers`` (default ``nodes``) are all the deployment's nodes: the anti-affinity rules hold every
    peer's VM, so a node rebuilt on its own (``recover``) goes back into its role's rule.
    """
    from pyVmomi import vim

    placement = locate(si, inventory)
    existing = {c.name: c for c in placement.folder.childEntity if isinstance(c, vim.VirtualMachine)}
    result = ProvisionResult()
    missing = [n for n in nodes if n.vm_name not in existing]
    vms = {n.name: existing[n.vm_name] for n in nodes if n.vm_name in existing}
    result.adopted = sorted(vms)
    if missing:
        _check_capacity(missing, placement)
        used = _addresses_in_use(si, exclude={n.vm_name for n in nodes})
        for node in missing:
            for address in filter(None, (str(node.mgmt_ip), str(node.api_ip) if node.api_ip else None)):
                if address in used:
                    raise BadInput(
                        f"{address}, planned for {node.name}, is already used by the VM {used[address]}",
                        hint="take that address out of the inventory's pool, or free it",
                    )
        say(f"cloning {len(missing)} VM(s) in parallel: {', '.join(n.vm_name for n in missing)}")
        tasks = []
        for node in missing:
            spec = clone_spec(
                placement.template,
                hostname=node.name,
                nics=_nic_plans(inventory, node, placement),
                dns=[str(a) for a in inventory.networks.management.dns],
                resource_pool=placement.cluster.resourcePool,
                datastore=placement.datastores[node.datastore],
                vcpus=node.vcpus,
                memory_mb=node.memory_mb,
                # The template's first-boot script authorizes this key for root (the lab's nodes get it
                # from the lab directly).
                guestinfo={AUTHORIZED_KEY: oms_public_key} if oms_public_key else None,
            )
            tasks.append(placement.template.CloneVM_Task(folder=placement.folder, name=node.vm_name, spec=spec))
        for node, vm in zip(missing, wait_for_tasks(si, tasks), strict=True):
            vms[node.name] = vm
            result.created.append(node.name)
    ruled = {n.name: existing[n.vm_name] for n in peers or nodes if n.vm_name in existing} | vms
    result.rules = _ensure_anti_affinity(si, inventory, peers or nodes, placement, ruled)
    off = [name for name, vm in vms.items() if str(vm.runtime.powerState) != "poweredOn"]
    if off:
        say(f"powering on {len(off)} VM(s)")
        wait_for_tasks(si, [vms[name].PowerOnVM_Task() for name in off])
        result.powered_on = sorted(off)
    wait_for_guest_ips(si, vms, {n.name: str(n.mgmt_ip) for n in nodes})
    result.vms = vms
    result.vm_ids = {name: vm._moId for name, vm in vms.items()}
    return result
