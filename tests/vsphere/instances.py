"""A VM in a compute cluster's resource pool as nova creates them (``nvp.vm-uuid`` in its extraConfig)."""

from __future__ import annotations

from viocli.lab import simulator


def clone_instance_vm(handle: simulator.SimulatorHandle, name: str, vm_uuid: str, *, power_on: bool) -> None:
    """Clone the lab template into vio-compute-a's resource pool, tagged with ``vm_uuid`` as nova tags VMs."""
    from pyVim.task import WaitForTask
    from pyVmomi import vim

    from viocli.vsphere.objects import find

    si = simulator.connect(handle)
    source = find(si, vim.VirtualMachine, simulator.TEMPLATE)
    pool = find(si, vim.ClusterComputeResource, "vio-compute-a").resourcePool
    config = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="nvp.vm-uuid", value=vm_uuid)])
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=pool), config=config, powerOn=power_on)
    WaitForTask(source.CloneVM_Task(folder=source.parent, name=name, spec=spec))
