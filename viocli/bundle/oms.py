"""What ``deployment getlogs`` collects from the OMS itself: viocli's log and its rotated files, the
last playbook runs' artifacts, the state store's view of the deployment (operation history, node
table, backups), the inventory and custom.yml, ``viocli show -p``, and what vCenter says of each VM.

Each item is (path in the bundle, data, where it came from); the writer redacts them like any file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from viocli.ops.context import Deployment
from viocli.settings import Settings
from viocli.state.store import StateStore

RUNS_KEPT = 10  # the last playbook runs whose artifacts are collected
RUN_FILES = ("stdout", "status", "rc", "command")  # job_events are left out: stdout holds what they say
HISTORY_KEPT = 200

Item = tuple[str, bytes, str]


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, default=str).encode() + b"\n"


def log_files(settings: Settings) -> list[Path]:
    """viocli's log and its rotated files (``viocli.log.1`` ...)."""
    log = settings.log_file
    if not log.parent.is_dir():
        return []
    return sorted(p for p in log.parent.glob(f"{log.name}*") if p.is_file())


def run_dirs(settings: Settings, deployment: str) -> list[Path]:
    """The artifact directories of the deployment's last playbook runs, oldest first."""
    root = settings.deployment_dir(deployment) / "runner" / "artifacts"
    if not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return runs[-RUNS_KEPT:]


def estimate(settings: Settings, deployment: Deployment) -> int:
    """Bytes the OMS's files add to the bundle (before compression), for the free-space check."""
    paths = [*log_files(settings), deployment.loaded.path]
    if deployment.loaded.custom_path:
        paths.append(deployment.loaded.custom_path)
    paths += [run / name for run in run_dirs(settings, deployment.name) for name in RUN_FILES]
    return sum(p.stat().st_size for p in paths if p.is_file()) + 1024 * 1024


def files(settings: Settings, deployment: Deployment) -> Iterator[Item]:
    """The OMS's files: logs, inventory, custom.yml, the last runs' artifacts."""
    for path in log_files(settings):
        yield f"oms/log/{path.name}", path.read_bytes(), f"file {path}"
    inventory = deployment.loaded.path
    if inventory.is_file():
        yield f"oms/inventory/{inventory.name}", inventory.read_bytes(), f"file {inventory}"
    custom = deployment.loaded.custom_path
    if custom is not None and custom.is_file():
        yield f"oms/inventory/{custom.name}", custom.read_bytes(), f"file {custom}"
    for run in run_dirs(settings, deployment.name):
        for name in RUN_FILES:
            path = run / name
            if path.is_file():
                yield f"oms/runs/{run.name}/{name}", path.read_bytes(), f"file {path}"


def state(store: StateStore | None, deployment: str) -> Iterator[Item]:
    """The state store's view of the deployment."""
    if store is None:
        return
    source = f"state store {store.path}"
    record = store.deployment(deployment)
    yield "oms/state/deployment.json", _json(asdict(record) if record else None), source
    yield "oms/state/nodes.json", _json([asdict(r) for r in store.nodes(deployment)]), source
    history = [asdict(r) for r in store.operations(deployment, limit=HISTORY_KEPT)]
    yield "oms/state/operations.json", _json(history), source
    yield "oms/state/backups.json", _json([asdict(r) for r in store.backups(deployment)]), source


def shown(deployment: Deployment) -> Iterator[Item]:
    """``viocli show`` and ``viocli show -p`` (the resolved inventory, secrets masked)."""
    from viocli.inventory.render import ansible_inventory

    rows = [
        f"{n.name}\t{n.role_label}\t{n.vm_name}\t{n.mgmt_ip}" for n in sorted(deployment.nodes, key=lambda n: n.name)
    ]
    yield "oms/show.txt", ("hostname\trole\tvm name\tip\n" + "\n".join(rows) + "\n").encode(), "viocli show"
    rendered = ansible_inventory(deployment.loaded.model, deployment.nodes, mask_secrets=True)
    text = yaml.safe_dump(rendered, default_flow_style=False, sort_keys=False)
    yield "oms/show-p.yml", text.encode(), "viocli show -p"


def vcenter(report: dict[str, Any] | None, error: str | None) -> Iterator[Item]:
    """What vCenter said of each VM (``viocli.vsphere.vm_report``), or why it could not be asked."""
    yield "oms/vcenter-vms.json", _json({"vms": report, "error": error}), "vCenter (vm_report)"
