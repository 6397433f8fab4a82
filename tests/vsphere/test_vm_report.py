"""``vm_report`` against the vCenter simulator: power state, host, datastores, snapshots and tasks of a
deployment's VMs, one VM's bad data an error on its entry only; and the task history collector (which
the simulator, govmomi 0.24.2, does not implement) with a fake task manager over the simulator's session."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from viocli.vsphere.power import NodeVM, find_vms
from viocli.vsphere.tasks import wait_for_tasks
from viocli.vsphere.vm_report import vm_report

pytestmark = pytest.mark.vsphere


def test_power_state_host_datastores_snapshots_and_the_tasks_since(deployed) -> None:
    si, deployment, vm_ids = deployed
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    since = datetime.now(UTC)
    wait_for_tasks(si, [found["database01"].vm.PowerOffVM_Task()])
    controller = found["controller01"].vm
    wait_for_tasks(
        si, [controller.CreateSnapshot_Task(name="before", description="pre-patch", memory=False, quiesce=False)]
    )
    wait_for_tasks(si, [controller.CreateSnapshot_Task(name="after", memory=False, quiesce=False)])

    report = vm_report(si, find_vms(si, "vio-dc", deployment.nodes, vm_ids), since=since)

    assert list(report) == list(found)
    assert json.loads(json.dumps(report)) == report, "plain JSON data"
    off, on = report["database01"], report["controller01"]
    assert off["power_state"] == "poweredOff" and on["power_state"] == "poweredOn"
    for node, entry in report.items():
        vm = found[node].vm
        assert entry["error"] is None, entry["error"]
        assert (entry["name"], entry["moid"]) == (found[node].vm_name, vm_ids[node])
        assert entry["host"] == vm.runtime.host.name and entry["host"].startswith("esx-")
        assert entry["datastores"] == [ds.name for ds in vm.datastore] and entry["datastores"]
        assert set(entry["guest"]) == {"tools_running_status", "tools_version_status", "ip_address", "hostname"}

    before, after = on["snapshots"]
    assert (before["name"], before["description"], before["parent"], before["current"]) == (
        "before",
        "pre-patch",
        None,
        False,
    )
    assert (after["name"], after["parent"], after["current"], after["state"]) == ("after", "before", True, "poweredOn")
    assert before["moid"] == controller.snapshot.rootSnapshotList[0].snapshot._moId
    created = datetime.fromisoformat(before["created"])
    assert created.utcoffset() == timedelta(0) and since <= created <= datetime.now(UTC)
    assert off["snapshots"] == []

    # The simulator has no task history collector: its recent tasks stand in, and the entry says so.
    assert "MethodNotFound" in off["tasks_error"] and "recent" in off["tasks_error"]
    (power_off,) = off["tasks"]  # provisioning's tasks were queued before `since`
    assert power_off["description_id"] == "VirtualMachine.powerOff"
    assert power_off["state"] == "success" and power_off["error"] is None
    assert power_off["started_by"] == "vcsim"  # the simulator's name for every session's user
    queued, started, completed = (datetime.fromisoformat(power_off[k]) for k in ("queued", "started", "completed"))
    assert since <= queued <= started <= completed and queued.utcoffset() == timedelta(0)
    assert [t["description_id"] for t in on["tasks"]] == ["VirtualMachine.createSnapshot"] * 2
    assert report["compute01"]["tasks"] == []


def test_one_vm_gone_is_an_error_on_its_entry_only(deployed) -> None:
    si, deployment, vm_ids = deployed
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    gone = found["database02"].vm
    wait_for_tasks(si, [gone.PowerOffVM_Task()])
    wait_for_tasks(si, [gone.Destroy_Task()])
    vms = {**found, "database03": NodeVM("database03", "vio-lab-ha-DB-2")}  # not found when located

    report = vm_report(si, vms, since=datetime.now(UTC) - timedelta(hours=1))

    assert report["database02"]["error"].startswith(f"vCenter cannot read {gone._moId}: ManagedObjectNotFound")
    assert report["database02"]["power_state"] is None
    assert report["database03"]["error"] == "vCenter has no such VM" and report["database03"]["moid"] is None
    assert {n: e["power_state"] for n, e in report.items() if n not in ("database02", "database03")} == {
        n: "poweredOn" for n in found if n not in ("database02", "database03")
    }
    assert all(report[n]["host"] for n in found if n not in ("database02", "database03"))


def test_a_plain_virtual_machine_and_a_naive_since(deployed) -> None:
    si, deployment, vm_ids = deployed
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)["compute02"]
    vm = found.vm
    wait_for_tasks(si, [vm.PowerOffVM_Task()])
    report = vm_report(si, {"compute02": vm}, since=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1))
    entry = report["compute02"]
    assert (entry["name"], entry["power_state"], entry["error"]) == (found.vm_name, "poweredOff", None)
    assert [t["description_id"] for t in entry["tasks"]][-1] == "VirtualMachine.powerOff"


# --- the task history collector, faked over the simulator's session ----------------------------------
class FakeCollector:
    """A TaskHistoryCollector serving ``pages``; ``fail`` is raised instead of the page after them."""

    def __init__(self, pages: list[list[Any]], fail: Exception | None = None) -> None:
        self.pages = list(pages)
        self.fail = fail
        self.calls: list[str] = []

    def RewindCollector(self) -> None:
        self.calls.append("rewind")

    def ReadNextTasks(self, count: int) -> list[Any]:
        self.calls.append(f"read {count}")
        if self.pages:
            return self.pages.pop(0)
        if self.fail is not None:
            raise self.fail
        return []

    def DestroyCollector(self) -> None:
        self.calls.append("destroy")


class FakeTaskManager:
    def __init__(self, collector: FakeCollector) -> None:
        self.collector = collector
        self.filters: list[Any] = []

    def CreateCollectorForTasks(self, spec: Any) -> FakeCollector:
        self.filters.append(spec)
        return self.collector


class Session:
    """The simulator's session, with a fake TaskManager in its content."""

    def __init__(self, si: Any, task_manager: FakeTaskManager) -> None:
        self.content = si.RetrieveContent()
        self.task_manager = task_manager

    def RetrieveContent(self) -> Any:
        session = self

        class Content:
            taskManager = session.task_manager

            def __getattr__(self, name: str) -> Any:
                return getattr(session.content, name)

        return Content()


def _info(vm: Any, key: str, queued: datetime, **fields: Any) -> Any:
    from pyVmomi import vim

    defaults = {"descriptionId": "VirtualMachine.powerOn", "state": "success"}
    return vim.TaskInfo(key=key, entity=vm, queueTime=queued, **(defaults | fields))


def test_the_history_collector_is_read_page_by_page_filtered_by_vm_and_time_and_destroyed(deployed) -> None:
    from pyVmomi import vim

    si, deployment, vm_ids = deployed
    vm = find_vms(si, "vio-dc", deployment.nodes, vm_ids)["controller02"].vm
    since = datetime(2026, 1, 1, tzinfo=UTC)
    fault = vim.fault.InvalidPowerState(msg="The attempted operation cannot be performed (Powered on).")
    first = [
        _info(vm, "task-2", since + timedelta(minutes=2), reason=vim.TaskReasonUser(userName="VSPHERE.LOCAL\\ops"))
    ]
    second = [
        _info(vm, "task-1", since + timedelta(minutes=1), state="error", error=fault, reason=vim.TaskReasonSystem()),
        _info(vm, "task-3", since + timedelta(minutes=3), descriptionId="VirtualMachine.reconfigure", state="running"),
    ]
    collector = FakeCollector([first, second])
    manager = FakeTaskManager(collector)

    entry = vm_report(Session(si, manager), {"controller02": vm}, since=since)["controller02"]

    (spec,) = manager.filters
    assert (spec.entity.entity._moId, spec.entity.recursion) == (vm._moId, "self")
    assert (spec.time.timeType, spec.time.beginTime) == ("queuedTime", since)
    assert collector.calls == ["rewind", "read 100", "read 100", "read 100", "destroy"]
    assert entry["tasks_error"] is None and entry["error"] is None and entry["power_state"] == "poweredOn"
    assert [(t["key"], t["state"], t["started_by"]) for t in entry["tasks"]] == [
        ("task-1", "error", "system"),
        ("task-2", "success", "VSPHERE.LOCAL\\ops"),
        ("task-3", "running", None),
    ]
    assert entry["tasks"][0]["error"] == "InvalidPowerState: The attempted operation cannot be performed (Powered on)."
    assert entry["tasks"][0]["queued"] == "2026-01-01T00:01:00+00:00" and entry["tasks"][0]["completed"] is None


def test_a_failing_history_read_keeps_what_was_read_and_still_destroys_the_collector(deployed) -> None:
    from pyVmomi import vmodl

    si, deployment, vm_ids = deployed
    vm = find_vms(si, "vio-dc", deployment.nodes, vm_ids)["loadbalancer01"].vm
    since = datetime(2026, 1, 1, tzinfo=UTC)
    collector = FakeCollector([[_info(vm, "task-7", since)]], fail=vmodl.fault.SystemError(reason="database down"))

    entry = vm_report(Session(si, FakeTaskManager(collector)), {"loadbalancer01": vm}, since=since)["loadbalancer01"]

    assert [t["key"] for t in entry["tasks"]] == ["task-7"]
    assert entry["tasks_error"].startswith("reading the task history failed after 1 tasks: SystemError")
    assert collector.calls[-1] == "destroy" and entry["error"] is None


def test_the_history_is_capped(deployed, monkeypatch) -> None:
    from viocli.vsphere import vm_report as module

    si, deployment, vm_ids = deployed
    vm = find_vms(si, "vio-dc", deployment.nodes, vm_ids)["compute01"].vm
    since = datetime(2026, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(module, "MAX_TASKS", 3)
    pages = [[_info(vm, f"task-{i}", since + timedelta(seconds=i)) for i in range(j, j + 2)] for j in (0, 2, 4)]
    collector = FakeCollector(pages)

    entry = vm_report(Session(si, FakeTaskManager(collector)), {"compute01": vm}, since=since)["compute01"]

    assert [t["key"] for t in entry["tasks"]] == ["task-0", "task-1", "task-2"]
    assert entry["tasks_error"] == "more than 3 tasks: only the oldest 3 are listed"
    assert collector.calls == ["rewind", "read 100", "read 100", "destroy"]
