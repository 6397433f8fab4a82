"""Read what guests publish in guestinfo (``config.extraConfig``), waiting on property changes.

A node's SSH host key reaches viocli this way: the guest publishes it (VMware Tools'
``vmware-rpctool "info-set guestinfo.viocli.ssh_host_ed25519_key ..."`` at first boot; the lab's
watcher does the same for lab nodes) and viocli reads it from vCenter over verified TLS, so host keys
are checked from the very first SSH connection.
"""

from __future__ import annotations

from typing import Any

from viocli.errors import OperationFailed
from viocli.vsphere.watch import watch

HOST_KEY = "guestinfo.viocli.ssh_host_ed25519_key"


def _option(vm: Any, key: str) -> str | None:
    for option in vm.config.extraConfig or []:
        if option.key == key and option.value:
            return str(option.value)
    return None


def wait_for_guestinfo(si: Any, vms: dict[str, Any], key: str = HOST_KEY, timeout: float = 600) -> dict[str, str]:
    """Block until every VM has ``key`` in its extraConfig; return name -> value."""
    from pyVmomi import vim

    by_id = {vm._moId: name for name, vm in vms.items()}
    found: dict[str, str] = {}

    def late() -> OperationFailed:
        missing = sorted(set(vms) - set(found))
        return OperationFailed(
            f"{key} not published within {timeout:.0f}s by: {', '.join(missing)}",
            hint="the template must publish its SSH host key at boot (see README: the template)",
        )

    for vm, _values in watch(
        si, list(vms.values()), vim.VirtualMachine, ["config.extraConfig"], timeout=timeout, on_timeout=late
    ):
        # Changes may name one keyed element (config.extraConfig["..."]) or the whole list,
        # depending on the server: read the list itself once something moved.
        value = _option(vms[by_id[vm._moId]], key)
        if value:
            found[by_id[vm._moId]] = value
        if len(found) == len(vms):
            break
    return found
