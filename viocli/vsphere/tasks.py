"""Wait for vSphere tasks through the property collector (WaitForUpdatesEx), never by sleeping."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from viocli.errors import OperationFailed


def wait_for_tasks(service_instance: Any, tasks: Sequence[Any], *, timeout: float = 600.0) -> list[Any]:
    """Block until every task has finished; return their results in order.

    One filter over all the tasks' ``info.state``/``info.error``/``info.result``: N tasks cost one
    round trip per change, not N polls. The first failed task raises OperationFailed.
    """
    from pyVmomi import vim, vmodl

    if not tasks:
        return []
    pc = vmodl.query.PropertyCollector
    collector = service_instance.RetrieveContent().propertyCollector.CreatePropertyCollector()
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=task) for task in tasks],
        propSet=[pc.PropertySpec(type=vim.Task, pathSet=["info.state", "info.error", "info.result", "info.name"])],
    )
    collector.CreateFilter(spec, partialUpdates=True)
    pending = {task._moId for task in tasks}
    results: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    version = ""
    try:
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationFailed(f"vSphere tasks did not finish within {timeout:.0f}s: {sorted(pending)}")
            options = pc.WaitOptions(maxWaitSeconds=max(1, min(int(remaining), 60)))
            update = collector.WaitForUpdatesEx(version, options)
            if update is None:
                continue
            version = update.version
            for filter_update in update.filterSet:
                for change in filter_update.objectSet:
                    values = {c.name: c.val for c in change.changeSet}
                    state = str(values.get("info.state", ""))
                    key = change.obj._moId
                    if state == "success":
                        results[key] = values.get("info.result")
                        pending.discard(key)
                    elif state == "error":
                        error = values.get("info.error")
                        message = getattr(error, "localizedMessage", None) or str(error)
                        raise OperationFailed(f"vSphere task {values.get('info.name') or key} failed: {message}")
    finally:
        collector.Destroy()
    return [results.get(task._moId) for task in tasks]
