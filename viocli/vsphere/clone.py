"""Clone specs with guest customization: hostname, one static IP per NIC, DNS and gateway."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from viocli.vsphere.objects import network_backing


@dataclass(frozen=True)
class NicPlan:
    """One NIC of a new VM: its port group and static address."""

    network: Any  # vim.Network or vim.dvs.DistributedVirtualPortgroup
    ip: str
    netmask: str
    gateway: str | None = None


def _nic_changes(template: Any, nics: Sequence[NicPlan]) -> list[Any]:
    from pyVmomi import vim

    existing = [d for d in template.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    changes = []
    for index, plan in enumerate(nics):
        if index < len(existing):
            device = existing[index]
            device.backing = network_backing(plan.network)
            operation = vim.vm.device.VirtualDeviceSpec.Operation.edit
        else:
            device = vim.vm.device.VirtualVmxnet3(key=-(index + 1), backing=network_backing(plan.network))
            device.connectable = vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True)
            operation = vim.vm.device.VirtualDeviceSpec.Operation.add
        changes.append(vim.vm.device.VirtualDeviceSpec(operation=operation, device=device))
    for device in existing[len(nics) :]:
        changes.append(
            vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.remove, device=device)
        )
    return changes


def clone_spec(
    template: Any,
    *,
    hostname: str,
    nics: Sequence[NicPlan],
    dns: Sequence[str] = (),
    domain: str = "local",
    resource_pool: Any = None,
    datastore: Any = None,
    vcpus: int | None = None,
    memory_mb: int | None = None,
    guestinfo: dict[str, str] | None = None,
) -> Any:
    """A CloneSpec that customizes the guest as ``hostname`` with a static IP on every NIC."""
    from pyVmomi import vim

    customization = vim.vm.customization.Specification(
        identity=vim.vm.customization.LinuxPrep(hostName=vim.vm.customization.FixedName(name=hostname), domain=domain),
        globalIPSettings=vim.vm.customization.GlobalIPSettings(dnsServerList=list(dns)),
        nicSettingMap=[
            vim.vm.customization.AdapterMapping(
                adapter=vim.vm.customization.IPSettings(
                    ip=vim.vm.customization.FixedIp(ipAddress=nic.ip),
                    subnetMask=nic.netmask,
                    gateway=[nic.gateway] if nic.gateway else [],
                    dnsServerList=list(dns),
                )
            )
            for nic in nics
        ],
    )
    config = vim.vm.ConfigSpec(deviceChange=_nic_changes(template, nics))
    if vcpus:
        config.numCPUs = vcpus
    if memory_mb:
        config.memoryMB = memory_mb
    if guestinfo:
        config.extraConfig = [vim.option.OptionValue(key=k, value=v) for k, v in sorted(guestinfo.items())]
    location = vim.vm.RelocateSpec(pool=resource_pool, datastore=datastore)
    return vim.vm.CloneSpec(
        location=location, config=config, customization=customization, powerOn=False, template=False
    )
