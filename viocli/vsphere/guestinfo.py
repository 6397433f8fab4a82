"""Read what guests publish in guestinfo (``config.extraConfig``), waiting on property changes.

A node's SSH host key reaches viocli this way: the guest publishes it (VMware Tools'
``vmware-rpctool "info-set guestinfo.viocli.ssh_host_ed25519_key ..."`` at first boot; the lab's
watcher does the same for lab nodes) and viocli reads it from vCenter over verified TLS, so host keys
are checked from the very first SSH connection.
"""

from __future__ import annotations

import time
from typing import Any

from viocli.errors import OperationFailed

HOST_KEY = "guestinfo.viocli.ssh_host_ed25519_key"


def _option(vm: Any, key: str) -> str | None:
    for option in vm.config.extraConfig or []:
        if option.key == key and option.value:
            return str(option.value)
    return None


def wait_for_guestinfo(si: Any, vms: dict[str, Any], key: str = HOST_KEY, timeout: float = 600) -> dict[str, str]:
    """Block until every VM has ``key`` in its extraConfig; return name -> value."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    collector = si.RetrieveContent().propertyCollector.CreatePropertyCollector()
    by_id = {vm._moId: name for name, vm in vms.items()}
    collector.CreateFilter(
        pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=vm) for vm in vms.values()],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=["config.extraConfig"])],
        ),
        partialUpdates=False,
    )
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    version = ""
    try:
        while len(found) < len(vms):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted(set(vms) - set(found))
                raise OperationFailed(
                    f"{key} not published within {timeout:.0f}s by: {', '.join(missing)}",
                    hint="the template must publish its SSH host key at boot (see README: the template)",
                )
            wait = pc.WaitOptions(maxWaitSeconds=max(1, min(60, int(remaining))))
            update = collector.WaitForUpdatesEx(version, wait)
            if update is None:
                continue
            version = update.version
            for filter_update in update.filterSet:
                for change in filter_update.objectSet:
                    # Changes may name one keyed element (config.extraConfig["..."]) or the whole
                    # list, depending on the server: read the list itself once something moved.
                    value = _option(vms[by_id[change.obj._moId]], key)
                    if value:
                        found[by_id[change.obj._moId]] = value
    finally:
        collector.Destroy()
    return found
