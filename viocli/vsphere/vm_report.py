"""What vCenter says of a deployment's VMs, as plain data for the getlogs bundle (JSON).

:func:`vm_report` reads every VM's properties in one property-collector call (and the names of their
hosts and datastores in a second one), then each VM's tasks since a given time through a task history
collector. One VM's bad data (deleted meanwhile, a property vCenter will not give) is an ``error`` on
that VM's entry, never an exception; a vCenter without task history collectors is a ``tasks_error``,
and then the tasks come from ``TaskManager.recentTask`` (what vCenter still has in memory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from viocli.vsphere.power import NodeVM
from viocli.vsphere.tasks import fault_text

VM_PROPERTIES = [
    "name",
    "runtime.powerState",
    "runtime.host",
    "datastore",
    "guest.toolsRunningStatus",
    "guest.toolsVersionStatus2",
    "guest.ipAddress",
    "guest.hostName",
    "snapshot",
]
PAGE = 100  # tasks per ReadNextTasks
MAX_TASKS = 1000  # per VM: a bundle is not an audit log
UNSUPPORTED = ("MethodNotFound", "NotImplemented", "NotSupported")


def vm_report(si: Any, vms: Mapping[str, Any], *, since: datetime) -> dict[str, dict[str, Any]]:
    """node name -> what vCenter says of its VM, for every entry of ``vms``, in its order.

    ``vms`` maps node names to :class:`~viocli.vsphere.power.NodeVM` (as ``locate_vms`` returns them)
    or to pyVmomi VirtualMachine objects. Each entry has ``name``, ``moid``, ``power_state``, ``host``
    (the ESXi host's name), ``datastores`` (names), ``guest`` (tools status, IP, hostname),
    ``snapshots`` (the tree flattened depth first, each with its ``parent``'s name), ``tasks`` (the
    tasks on the VM queued since ``since``, oldest first), ``tasks_error`` and ``error`` (None, or
    why that part is missing or incomplete). Times are ISO-8601 in UTC; a naive ``since`` is UTC.
    Only a broken connection (OSError) raises.
    """
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    report: dict[str, dict[str, Any]] = {}
    targets: dict[str, Any] = {}
    for node, value in vms.items():
        vm = value.vm if isinstance(value, NodeVM) else value
        entry = _entry(value.vm_name if isinstance(value, NodeVM) else None, vm)
        report[node] = entry
        if vm is None:
            entry["error"] = "vCenter has no such VM"
        else:
            targets[node] = vm
    props, failed = _retrieve(si, targets.values(), {"VirtualMachine": VM_PROPERTIES})
    names, _ = _retrieve(si, _hosts_and_datastores(props.values()), {"HostSystem": ["name"], "Datastore": ["name"]})
    tasks = _TaskReader(si, since)
    for node, vm in targets.items():
        entry = report[node]
        if vm._moId not in props:
            entry["error"] = failed.get(vm._moId, "vCenter did not return this VM's properties")
            continue
        try:
            _fill(entry, props[vm._moId], names)
        except OSError:  # the connection: every VM's report would fail alike
            raise
        except Exception as error:  # one VM's odd data must not lose the others
            entry["error"] = f"cannot make sense of this VM's properties: {type(error).__name__}: {error}"
        try:
            entry["tasks"], entry["tasks_error"] = tasks.read(vm)
        except OSError:
            raise
        except Exception as error:
            entry["tasks_error"] = f"cannot make sense of this VM's tasks: {type(error).__name__}: {error}"
    return report


def _entry(name: str | None, vm: Any) -> dict[str, Any]:
    return {
        "name": name,
        "moid": vm._moId if vm is not None else None,
        "power_state": None,
        "host": None,
        "datastores": [],
        "guest": {},
        "snapshots": [],
        "tasks": [],
        "tasks_error": None,
        "error": None,
    }


def _fill(entry: dict[str, Any], props: dict[str, Any], names: dict[str, dict[str, Any]]) -> None:
    """Fill ``entry`` from a VM's properties; the names of hosts and datastores come from ``names``."""
    host = props.get("runtime.host")
    entry["name"] = props.get("name", entry["name"])
    entry["power_state"] = _text(props.get("runtime.powerState"))
    entry["host"] = names.get(host._moId, {}).get("name", host._moId) if host is not None else None
    entry["datastores"] = [names.get(ds._moId, {}).get("name", ds._moId) for ds in props.get("datastore") or []]
    entry["guest"] = {
        "tools_running_status": _text(props.get("guest.toolsRunningStatus")),
        "tools_version_status": _text(props.get("guest.toolsVersionStatus2")),
        "ip_address": _text(props.get("guest.ipAddress")),
        "hostname": _text(props.get("guest.hostName")),
    }
    info = props.get("snapshot")
    current = info.currentSnapshot._moId if info is not None and info.currentSnapshot is not None else None
    entry["snapshots"] = _snapshots(info.rootSnapshotList if info is not None else [], None, current)
    missing = props.get("_missing")
    if missing:
        entry["error"] = "vCenter did not give " + "; ".join(f"{path} ({why})" for path, why in missing.items())


def _snapshots(trees: Iterable[Any], parent: str | None, current: str | None) -> list[dict[str, Any]]:
    """A snapshot tree flattened depth first: each snapshot names its parent (None for a root)."""
    flat: list[dict[str, Any]] = []
    for tree in trees or []:
        moid = tree.snapshot._moId if tree.snapshot is not None else None
        flat.append(
            {
                "name": tree.name,
                "description": tree.description or "",
                "created": _iso(tree.createTime),
                "state": _text(tree.state),
                "quiesced": bool(tree.quiesced),
                "parent": parent,
                "moid": moid,
                "current": moid is not None and moid == current,
            }
        )
        flat.extend(_snapshots(tree.childSnapshotList, tree.name, current))
    return flat


class _TaskReader:
    """Each VM's tasks since ``since``: a task history collector per VM, else vCenter's recent tasks."""

    def __init__(self, si: Any, since: datetime) -> None:
        self.si = si
        self.since = since
        self.unsupported: str | None = None  # why the collector cannot be used, once known
        self.recent: list[Any] | None = None

    def read(self, vm: Any) -> tuple[list[dict[str, Any]], str | None]:
        """(the VM's tasks oldest first, None or why the list is incomplete); never raises a vmodl fault."""
        from pyVmomi import vmodl

        if self.unsupported is None:
            try:
                return self._history(vm)
            except _Unsupported as error:
                self.unsupported = str(error)
            except vmodl.MethodFault as fault:
                return [], f"cannot read this VM's tasks: {fault_text(fault)}"
        try:
            tasks = [
                _task(info) for info in self._recent() if info.entity is not None and info.entity._moId == vm._moId
            ]
        except vmodl.MethodFault as fault:
            return [], f"{self.unsupported}; vCenter's recent tasks unreadable too: {fault_text(fault)}"
        return _ordered(tasks), f"{self.unsupported}; these are only the tasks vCenter still lists as recent"

    def _history(self, vm: Any) -> tuple[list[dict[str, Any]], str | None]:
        from pyVmomi import vim, vmodl

        spec = vim.TaskFilterSpec(
            entity=vim.TaskFilterSpec.ByEntity(entity=vm, recursion="self"),
            time=vim.TaskFilterSpec.ByTime(timeType="queuedTime", beginTime=self.since),
        )
        try:
            collector = self.si.RetrieveContent().taskManager.CreateCollectorForTasks(spec)
        except vmodl.MethodFault as fault:
            if (getattr(fault, "_wsdlName", None) or type(fault).__name__) in UNSUPPORTED:
                raise _Unsupported(f"vCenter has no task history collector: {fault_text(fault)}") from fault
            raise
        tasks: list[dict[str, Any]] = []
        problem = None
        try:
            collector.RewindCollector()
            while page := collector.ReadNextTasks(PAGE):
                tasks.extend(_task(info) for info in page)
                if len(tasks) > MAX_TASKS:
                    del tasks[MAX_TASKS:]
                    problem = f"more than {MAX_TASKS} tasks: only the oldest {MAX_TASKS} are listed"
                    break
        except vmodl.MethodFault as fault:
            problem = f"reading the task history failed after {len(tasks)} tasks: {fault_text(fault)}"
        finally:
            with contextlib.suppress(vmodl.MethodFault):
                collector.DestroyCollector()
        return _ordered(tasks), problem

    def _recent(self) -> list[Any]:
        """TaskInfo of every task in ``TaskManager.recentTask`` queued since ``since`` (read once)."""
        if self.recent is None:
            manager = self.si.RetrieveContent().taskManager
            found, _ = _retrieve(self.si, list(manager.recentTask), {"Task": ["info"]})
            infos = [p["info"] for p in found.values() if "info" in p]
            self.recent = [i for i in infos if i.queueTime is not None and i.queueTime >= self.since]
        return self.recent


class _Unsupported(Exception):
    """The vCenter has no task history collector."""


def _task(info: Any) -> dict[str, Any]:
    """A TaskInfo as data."""
    return {
        "key": info.key,
        "description_id": info.descriptionId,
        "state": _text(info.state),
        "queued": _iso(info.queueTime),
        "started": _iso(info.startTime),
        "completed": _iso(info.completeTime),
        "error": fault_text(info.error) if info.error is not None else None,
        "started_by": _reason(info.reason),
    }


def _ordered(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(tasks, key=lambda t: t["queued"] or "")


def _reason(reason: Any) -> str | None:
    """Who or what started a task: the user's name, ``alarm <name>``, ``scheduled task <name>``, ``system``."""
    if reason is None:
        return None
    kind = getattr(reason, "_wsdlName", None) or type(reason).__name__
    if kind == "TaskReasonUser":
        return str(reason.userName)
    if kind == "TaskReasonAlarm":
        return f"alarm {reason.alarmName} on {reason.entityName}"
    if kind == "TaskReasonSchedule":
        return f"scheduled task {reason.name}"
    return "system" if kind == "TaskReasonSystem" else kind


def _hosts_and_datastores(vms: Iterable[dict[str, Any]]) -> list[Any]:
    """The distinct hosts and datastores the VMs' properties refer to."""
    refs: dict[str, Any] = {}
    for props in vms:
        for ref in [props.get("runtime.host"), *(props.get("datastore") or [])]:
            if ref is not None:
                refs.setdefault(ref._moId, ref)
    return list(refs.values())


def _retrieve(
    si: Any, objects: Iterable[Any], paths: Mapping[str, list[str]]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(moid -> {path: value}, moid -> why it could not be read) for ``objects``; ``paths`` by type name.

    One property-collector call for all; when that fails (e.g. one object was deleted meanwhile), one
    call per object, so that only the bad ones are lost. Paths vCenter did not give are in ``_missing``.
    """
    from pyVmomi import vmodl

    objects = list(objects)
    if not objects:
        return {}, {}
    try:
        return _retrieve_all(si, objects, paths), {}
    except vmodl.MethodFault:
        pass
    found: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for obj in objects:
        try:
            found.update(_retrieve_all(si, [obj], paths))
        except vmodl.MethodFault as fault:
            failed[obj._moId] = f"vCenter cannot read {obj._moId}: {fault_text(fault)}"
    return found, failed


def _retrieve_all(si: Any, objects: list[Any], paths: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=obj, skip=False) for obj in objects],
        propSet=[pc.PropertySpec(type=getattr(vim, kind), pathSet=list(p)) for kind, p in paths.items()],
    )
    collector = si.RetrieveContent().propertyCollector
    page = collector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
    found: dict[str, dict[str, Any]] = {}
    while page is not None:
        for item in page.objects:
            props = {p.name: p.val for p in item.propSet or []}
            if item.missingSet:
                props["_missing"] = {m.path: fault_text(m.fault) for m in item.missingSet}
            found[item.obj._moId] = props
        page = collector.ContinueRetrievePropertiesEx(page.token) if page.token else None
    return found


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
