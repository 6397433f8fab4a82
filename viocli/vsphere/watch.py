"""Follow property changes of vSphere objects with WaitForUpdatesEx: the one waiting loop of viocli."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def watch(
    si: Any,
    objects: Sequence[Any],
    vim_type: Any,
    paths: Sequence[str],
    *,
    timeout: float,
    on_timeout: Callable[[], Exception],
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Yield ``(object, {path: value})`` for the current values, then for every change.

    The caller stops by leaving its loop (the collector is destroyed then); past ``timeout`` seconds
    the exception ``on_timeout()`` returns is raised.
    """
    from pyVmomi import vmodl

    pc = vmodl.query.PropertyCollector
    collector = si.RetrieveContent().propertyCollector.CreatePropertyCollector()
    collector.CreateFilter(
        pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=obj) for obj in objects],
            propSet=[pc.PropertySpec(type=vim_type, pathSet=list(paths))],
        ),
        partialUpdates=False,
    )
    deadline = time.monotonic() + timeout
    version = ""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise on_timeout()
            update = collector.WaitForUpdatesEx(version, pc.WaitOptions(maxWaitSeconds=max(1, min(60, int(remaining)))))
            if update is None:
                continue
            version = update.version
            for filter_update in update.filterSet:
                for change in filter_update.objectSet:
                    yield change.obj, {item.name: item.val for item in change.changeSet}
    finally:
        collector.Destroy()
