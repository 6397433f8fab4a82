"""``deployment configure``: re-apply the inventory and custom.yml to a deployment that exists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from viocli.errors import Refused
from viocli.ops import plans
from viocli.ops.ansible import run_ansible
from viocli.ops.context import Deployment, deployment_name, resolve_deployment
from viocli.ops.operation import operation
from viocli.runner.engine import RunResult
from viocli.settings import Settings
from viocli.state.store import DeploymentRecord, StateStore

# Statuses in which the nodes exist and answer SSH, so the playbooks can run.
CONFIGURABLE = ("configuring", "running")


def existing_deployment(
    settings: Settings, inventory_path: Path | None, name: str | None, verb: str
) -> tuple[Deployment, DeploymentRecord]:
    """The deployment ``verb`` acts on and its record, refused (exit 4) unless the state store has it.

    Read-only: nothing is created or written, whatever the outcome.
    """
    reader = StateStore.open_readonly(settings.db_path)
    if reader is None and inventory_path is None and name is not None:
        deployment_name(settings, name, None)  # a bad or unknown -d is bad input (exit 2), even on a new OMS
    if reader is None:
        raise Refused(
            f"no deployment exists on this OMS; nothing to {verb}", hint="sudo viocli deployment create -i FILE"
        )
    try:
        deployment = resolve_deployment(settings, reader, inventory_path, name)
        record = reader.deployment(deployment.name)
    finally:
        reader.close()
    if record is None:
        raise Refused(
            f"deployment {deployment.name} does not exist on this OMS; nothing to {verb}",
            hint=f"create it first: sudo viocli deployment create -i {deployment.loaded.path}",
        )
    return deployment, record


def status_refused(deployment: Deployment, status: str, verb: str, needs: str = "its nodes up") -> Refused:
    """The refusal (exit 4) of ``verb`` on a deployment whose status does not allow it."""
    name = deployment.name
    if status == "stopped":
        return Refused(f"deployment {name} is stopped; start it first: sudo viocli deployment start")
    if status == "stopping":
        return Refused(
            f"deployment {name} is stopping (a deployment stop did not finish); {verb} needs {needs}",
            hint=f"finish the stop: sudo viocli deployment stop -d {name}; or start it: "
            f"sudo viocli deployment start -d {name}",
        )
    return Refused(
        f"deployment {name} is {status}; {verb} needs {needs}",
        hint=f"finish it first: sudo viocli deployment create -i {deployment.loaded.path}",
    )


def configurable_deployment(settings: Settings, inventory_path: Path | None, name: str | None, verb: str) -> Deployment:
    """The deployment ``verb`` acts on, refused (exit 4) unless it exists and its nodes are up."""
    deployment, record = existing_deployment(settings, inventory_path, name, verb)
    if record.status not in CONFIGURABLE:
        raise status_refused(deployment, record.status, verb)
    return deployment


def configure(
    settings: Settings,
    inventory_path: Path | None,
    name: str | None,
    *,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    limit: Sequence[str] = (),
    check: bool = False,
    diff: bool = False,
    cli_vars: Mapping[str, Any] | None = None,
    verbosity: int = 0,
    tuned: bool = True,
) -> RunResult:
    """Run configure.yml against the deployment, holding its lock; returns the run's result.

    ``tuned=False`` runs with stock Ansible settings (the benchmark's baseline).
    """
    deployment = configurable_deployment(settings, inventory_path, name, "configure")
    run = plans.configure(deployment, tags=tags, skip_tags=skip_tags, limit=limit, check=check, diff=diff)
    with operation(settings, deployment.name, "deployment configure"):
        return run_ansible(settings, deployment, run, cli_vars=cli_vars, verbosity=verbosity, tuned=tuned)
