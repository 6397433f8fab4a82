"""Wait for vSphere tasks through the property collector (WaitForUpdatesEx), never by sleeping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from viocli.errors import OperationFailed
from viocli.vsphere.watch import watch


def wait_for_tasks(service_instance: Any, tasks: Sequence[Any], *, timeout: float = 600.0) -> list[Any]:
    """Block until every task has finished; return their results in order.

    One filter over all the tasks' ``info.state``/``info.error``/``info.result``: N tasks cost one
    round trip per change, not N polls. The first failed task raises OperationFailed.
    """
    from pyVmomi import vim

    if not tasks:
        return []
    pending = {task._moId for task in tasks}
    results: dict[str, Any] = {}
    changes = watch(
        service_instance,
        tasks,
        vim.Task,
        ["info.state", "info.error", "info.result", "info.name"],
        timeout=timeout,
        on_timeout=lambda: OperationFailed(f"vSphere tasks did not finish within {timeout:.0f}s: {sorted(pending)}"),
    )
    for task, values in changes:
        state = str(values.get("info.state", ""))
        if state == "success":
            results[task._moId] = values.get("info.result")
            pending.discard(task._moId)
        elif state == "error":
            error = values.get("info.error")
            message = getattr(error, "localizedMessage", None) or str(error)
            raise OperationFailed(f"vSphere task {values.get('info.name') or task._moId} failed: {message}")
        if not pending:
            break
    return [results.get(task._moId) for task in tasks]
