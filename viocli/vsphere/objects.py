"""Find vSphere objects by name, with an error that names whatever is missing."""

from __future__ import annotations

from typing import Any

from viocli.errors import BadInput


def find(service_instance: Any, vim_type: Any, name: str, *, within: Any = None, what: str | None = None) -> Any:
    """The object of ``vim_type`` called ``name`` (under ``within``, default the root folder)."""
    content = service_instance.RetrieveContent()
    view = content.viewManager.CreateContainerView(within or content.rootFolder, [vim_type], True)
    try:
        for obj in view.view:
            if obj.name == name:
                return obj
        names = sorted(obj.name for obj in view.view)
    finally:
        view.Destroy()
    label = what or vim_type.__name__.rsplit(".", 1)[-1]
    raise BadInput(
        f"vCenter has no {label} named {name!r}" + (f" (found: {', '.join(names[:10])})" if names else ""),
        hint="check the name in the inventory's vcenter section",
    )


def network_backing(network: Any) -> Any:
    """NIC backing for a port group: a standard network or a distributed port group."""
    from pyVmomi import vim

    if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        connection = vim.dvs.PortConnection(
            portgroupKey=network.key, switchUuid=network.config.distributedVirtualSwitch.uuid
        )
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=connection)
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network.name, network=network)
