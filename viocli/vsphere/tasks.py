"""Wait for vSphere tasks through the property collector (WaitForUpdatesEx), never by sleeping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from viocli.errors import OperationFailed
from viocli.vsphere.watch import watch


def fault_text(fault: Any) -> str:
    """A vSphere fault as one line: its type and its message (``InvalidState: cannot powerOn a template``)."""
    name = getattr(fault, "_wsdlName", None) or type(fault).__name__
    message = getattr(fault, "localizedMessage", None) or getattr(fault, "msg", None) or ""
    if not isinstance(message, str) or message.startswith("*types."):  # the simulator's placeholder
        message = ""
    prop = getattr(fault, "invalidProperty", None)
    if prop and prop not in message:
        message = f"{message} ({prop})" if message else str(prop)
    return f"{name}: {message}" if message else name


@dataclass(frozen=True)
class TaskOutcome:
    """How one task ended: its result, or the fault it failed with."""

    task: Any
    name: str
    result: Any = None
    fault: Any = None

    @property
    def failed(self) -> bool:
        return self.fault is not None


def task_outcomes(service_instance: Any, tasks: Sequence[Any], *, timeout: float = 600.0) -> list[TaskOutcome]:
    """Block until every task has finished, successfully or not; return their outcomes in order.

    One filter over all the tasks' ``info.state``/``info.error``/``info.result``: N tasks cost one
    round trip per change, not N polls.
    """
    from pyVmomi import vim

    if not tasks:
        return []
    pending = {task._moId for task in tasks}
    outcomes: dict[str, TaskOutcome] = {}

    def late() -> OperationFailed:
        failed = [f"{o.name}: {fault_text(o.fault)}" for o in outcomes.values() if o.failed]
        also = f" (failed meanwhile: {'; '.join(failed)})" if failed else ""
        return OperationFailed(f"vSphere tasks did not finish within {timeout:.0f}s: {sorted(pending)}{also}")

    changes = watch(
        service_instance,
        tasks,
        vim.Task,
        ["info.state", "info.error", "info.result", "info.name"],
        timeout=timeout,
        on_timeout=late,
    )
    for task, values in changes:
        state = str(values.get("info.state", ""))
        name = str(values.get("info.name") or task._moId)
        if state == "success":
            outcomes[task._moId] = TaskOutcome(task, name, result=values.get("info.result"))
            pending.discard(task._moId)
        elif state == "error":
            outcomes[task._moId] = TaskOutcome(task, name, fault=values.get("info.error"))
            pending.discard(task._moId)
        if not pending:
            break
    return [outcomes[task._moId] for task in tasks]


def wait_for_tasks(
    service_instance: Any, tasks: Sequence[Any], *, timeout: float = 600.0, labels: Sequence[str] | None = None
) -> list[Any]:
    """Block until every task has finished; return their results in order.

    When any failed, raise OperationFailed naming each failed task (with its label, e.g. the VM it
    acts on, when ``labels`` gives one per task) and its fault, once all have finished.
    """
    outcomes = task_outcomes(service_instance, tasks, timeout=timeout)
    where = list(labels) if labels is not None else [None] * len(outcomes)
    failed = [
        f"vSphere task {o.name}{f' on {label}' if label else ''} failed: {fault_text(o.fault)}"
        for o, label in zip(outcomes, where, strict=True)
        if o.failed
    ]
    if len(failed) == 1:
        raise OperationFailed(failed[0])
    if failed:
        raise OperationFailed(f"{len(failed)} vSphere tasks failed; the first: {failed[0]}", details=failed)
    return [o.result for o in outcomes]
