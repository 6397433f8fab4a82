"""The node watcher: turns the simulator's VMs into lab nodes, following vSphere, never polling.

It holds one property-collector filter over every VM (power state, guest identity and NICs) and
over the task manager's recent tasks, and waits with WaitForUpdatesEx. Each change is reconciled:
a powered-on VM with a customized hostname and management IP runs as a node; a powered-off one is
stopped with its disk kept; a VM that disappears is destroyed with its disk. A createSnapshot task
copies the node's disk, a revertToSnapshot task puts that copy back.

Run by ``viocli lab up`` as ``python -m viocli.lab.watcher``.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

from viocli.lab.journal import Journal
from viocli.lab.layout import LabPaths, network_for_portgroup
from viocli.lab.node import LabNode, Nic, NodeSpec

log = logging.getLogger("viocli.lab.watcher")
RECONNECT_DELAY_SECONDS = 2
HOST_KEY_GUESTINFO = "guestinfo.viocli.ssh_host_ed25519_key"

VM_PROPERTIES = ["name", "runtime.powerState", "guest.hostName", "guest.net", "config.template"]
TASK_PROPERTIES = ["info.state", "info.descriptionId", "info.entity", "info.result"]
# Tasks are told apart by descriptionId (info.name is a method-name object, not a string). The lab's
# simulator reports both with the VM as entity and the snapshot as result.
SNAPSHOT_TASK = "VirtualMachine.createSnapshot"
REVERT_TASK = "vm.Snapshot.revert"


@dataclass
class VmView:
    """What the watcher knows of one VM, from property-collector updates."""

    key: str
    props: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> NodeSpec | None:
        """The node this VM should be, or None if it is not a customized lab VM."""
        if self.props.get("config.template"):
            return None
        hostname = self.props.get("guest.hostName")
        nics: list[Nic] = []
        dns: list[str] = []
        for guest_nic in self.props.get("guest.net") or []:
            network = network_for_portgroup(getattr(guest_nic, "network", "") or "")
            addresses = [a for a in (guest_nic.ipAddress or []) if _is_ipv4(a)]
            if network is None or not addresses:
                continue
            nics.append(Nic(network, IPv4Address(addresses[0])))
            dns_config = getattr(guest_nic, "dnsConfig", None)
            dns.extend(d for d in (getattr(dns_config, "ipAddress", None) or []) if d not in dns)
        if not hostname or not nics:
            return None
        return NodeSpec(key=self.key, hostname=hostname.split(".")[0], nics=tuple(nics), dns=tuple(dns))

    @property
    def powered_on(self) -> bool:
        return str(self.props.get("runtime.powerState")) == "poweredOn"


def _is_ipv4(text: str) -> bool:
    try:
        return ip_address(text).version == 4
    except ValueError:
        return False


class Watcher:
    """Reconciles lab nodes with the simulator's VMs."""

    def __init__(self, service_instance: Any, paths: LabPaths, template: Path, oms_public_key: str):
        self.si = service_instance
        self.paths = paths
        self.template = template
        self.oms_public_key = oms_public_key
        self.journal = Journal(paths.journal)
        self.vms: dict[str, VmView] = {}
        self.task_filters: dict[str, Any] = {}
        self.seen_tasks: set[str] = set()
        self.stopping = False

    # --- property collector --------------------------------------------------------------------
    def _collector(self):
        from pyVmomi import vim, vmodl

        content = self.si.RetrieveContent()
        collector = content.propertyCollector.CreatePropertyCollector()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        pc = vmodl.query.PropertyCollector
        traverse = pc.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
        # One property type per filter: govmomi's simulator panics when a filter with several types
        # meets a change of an object that was just deleted.
        collector.CreateFilter(
            pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
                propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=VM_PROPERTIES)],
            ),
            partialUpdates=False,
        )
        collector.CreateFilter(
            pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=content.taskManager, skip=False)],
                propSet=[pc.PropertySpec(type=vim.TaskManager, pathSet=["recentTask"])],
            ),
            partialUpdates=False,
        )
        return collector

    def _watch_task(self, collector: Any, task: Any) -> None:
        from pyVmomi import vim, vmodl

        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=task, skip=False)],
            propSet=[pc.PropertySpec(type=vim.Task, pathSet=TASK_PROPERTIES)],
        )
        self.task_filters[task._moId] = collector.CreateFilter(spec, partialUpdates=False)

    def _new_task(self, collector: Any, task: Any) -> None:
        """Act on a finished task now; follow a running one until it finishes.

        The simulator does not report the current state of an object to a filter created after
        the collector's first wait, so the task's state is read once here.
        """
        info = task.info
        values = {
            "info.state": info.state,
            "info.descriptionId": info.descriptionId,
            "info.entity": info.entity,
            "info.result": info.result,
        }
        if str(info.state) in ("success", "error"):
            self._task_update(task, values)
        else:
            self._watch_task(collector, task)

    def run(self) -> None:
        """Follow the simulator until SIGTERM."""
        from pyVmomi import vmodl

        signal.signal(signal.SIGTERM, self._on_term)
        collector = self._collector()
        version = ""
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=5)
        log.info("watching the simulator for VMs")
        while not self.stopping:
            update = collector.WaitForUpdatesEx(version, options)
            if update is None:
                continue
            first = version == ""
            version = update.version
            for filter_update in update.filterSet:
                for change in filter_update.objectSet:
                    try:
                        self._handle(collector, change)
                    except Exception:  # a node that fails must not stop the watcher for the others
                        log.exception("handling %s %s failed", change.kind, change.obj)
            if first:
                self._remove_orphans()
        log.info("watcher stopped")

    def _remove_orphans(self) -> None:
        """Nodes whose VM no longer exists (gone while the watcher was away) are destroyed."""
        if not self.paths.nodes.is_dir():
            return
        for node_dir in self.paths.nodes.iterdir():
            if node_dir.name not in self.vms:
                self._vm_gone(node_dir.name)

    def _on_term(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    # --- updates -------------------------------------------------------------------------------
    def _handle(self, collector: Any, change: Any) -> None:
        from pyVmomi import vim

        obj = change.obj
        if isinstance(obj, vim.TaskManager):
            for item in change.changeSet:
                for task in item.val or []:
                    if task._moId not in self.seen_tasks:
                        self.seen_tasks.add(task._moId)
                        self._new_task(collector, task)
        elif isinstance(obj, vim.Task):
            self._task_update(obj, {item.name: item.val for item in change.changeSet})
        elif isinstance(obj, vim.VirtualMachine):
            key = obj._moId
            if change.kind == "leave":
                self._vm_gone(key)
                return
            view = self.vms.setdefault(key, VmView(key))
            for item in change.changeSet:
                view.props[item.name] = item.val
            self._reconcile(view)

    def _reconcile(self, view: VmView) -> None:
        node = LabNode(self.paths, view.key, self.journal)
        spec = view.spec()
        if view.powered_on and spec is not None:
            if not node.running():
                log.info("VM %s powered on: starting node %s (%s)", view.key, spec.hostname, spec.mgmt_ip)
                node.start(spec, self.template, self.oms_public_key)
                self._publish_host_key(view.key, node)
        elif not view.powered_on and node.running():
            log.info("VM %s powered off: stopping its node (disk kept)", view.key)
            node.stop()

    def _publish_host_key(self, key: str, node: LabNode) -> None:
        """Do what VMware Tools does for a real guest: publish the SSH host key in guestinfo.

        viocli reads it from vCenter (over verified TLS) into its known_hosts, so host keys are
        checked from the first connection on.
        """
        from pyVmomi import vim

        public = node.host_key_pub.read_text(encoding="ascii").strip()
        vm = vim.VirtualMachine(key, self.si._stub)
        option = vim.option.OptionValue(key=HOST_KEY_GUESTINFO, value=public)
        vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[option]))

    def _vm_gone(self, key: str) -> None:
        self.vms.pop(key, None)
        node = LabNode(self.paths, key, self.journal)
        if node.dir.exists():
            log.info("VM %s destroyed: removing its node and disk", key)
            node.destroy()

    def _task_update(self, task: Any, values: dict[str, Any]) -> None:
        state = str(values.get("info.state"))
        if state not in ("success", "error"):
            return
        task_filter = self.task_filters.pop(task._moId, None)
        if task_filter is not None:
            task_filter.Destroy()
        if state != "success":
            return
        kind = str(values.get("info.descriptionId"))
        vm, snapshot = values.get("info.entity"), values.get("info.result")
        if kind not in (SNAPSHOT_TASK, REVERT_TASK) or vm is None or snapshot is None:
            return
        node = LabNode(self.paths, vm._moId, self.journal)
        if not node.dir.exists():
            return
        if kind == SNAPSHOT_TASK:
            log.info("snapshot %s of VM %s: copying the node's disk", snapshot._moId, vm._moId)
            node.snapshot(snapshot._moId)
            self._note(node, f"snapshot {snapshot._moId}")
        else:
            view = self.vms.get(vm._moId)
            spec = view.spec() if view and view.powered_on else None
            log.info("revert of VM %s to %s: restoring the node's disk", vm._moId, snapshot._moId)
            node.revert(snapshot._moId, spec, self.template, self.oms_public_key)
            self._note(node, f"revert {snapshot._moId}")

    @staticmethod
    def _note(node: LabNode, event: str) -> None:
        """Append to the node's applied-operations log (tests and the lab status read it)."""
        with open(node.dir / "applied.log", "a", encoding="utf-8") as handle:
            handle.write(event + "\n")


def vmodl_fault() -> type:
    from pyVmomi import vmodl

    return vmodl.MethodFault


def connect(url_host: str, port: int, user: str, password: str, ca_file: Path) -> Any:
    """Log in to the simulator with TLS verified against the lab CA."""
    from pyVim.connect import SmartConnect

    context = ssl.create_default_context(cafile=str(ca_file))
    return SmartConnect(host=url_host, port=port, user=user, pwd=password, sslContext=context)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="viocli-lab-watcher")
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--credentials", type=Path, required=True)
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--oms-public-key", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    user, password = args.credentials.read_text(encoding="utf-8").splitlines()[:2]
    public_key = args.oms_public_key.read_text().strip()
    while True:
        watcher: Watcher | None = None
        try:
            si = connect(args.host, args.port, user, password, args.ca_file)
            watcher = Watcher(si, LabPaths(args.lab_dir), args.template, public_key)
            watcher.run()
            return
        except (OSError, http.client.HTTPException, vmodl_fault()) as error:
            if watcher is not None and watcher.stopping:
                return
            # The simulator restarted or dropped the connection: log in again and resynchronize.
            log.warning("lost the simulator (%s); reconnecting", error)
            time.sleep(RECONNECT_DELAY_SECONDS)


if __name__ == "__main__":
    main()
