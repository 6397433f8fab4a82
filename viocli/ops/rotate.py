"""``secrets rotate``: new values for named secrets, pushed to every consumer by configure.

The new values are stored before they are pushed: when the push fails half-way, the store holds
what the nodes must get, and ``deployment configure`` (or the same rotate) finishes the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from viocli.errors import BadInput, ViocliError
from viocli.logsetup import get_logger
from viocli.names import did_you_mean
from viocli.ops import plans
from viocli.ops.ansible import run_ansible
from viocli.ops.configure import configurable_deployment
from viocli.ops.operation import operation
from viocli.redact import REDACTOR
from viocli.runner.engine import RunResult
from viocli.secrets.catalog import (
    GENERATED,
    NOT_ROTATABLE,
    OPERATOR_SECRET,
    ROTATABLE,
    SERVICE_CREDENTIALS,
    secret_values,
)
from viocli.secrets.store import SecretStore
from viocli.settings import Settings


@dataclass
class RotateResult:
    """What a rotation replaced and the configure run that pushed it."""

    deployment: str
    rotated: list[str]
    configured: RunResult


def rotation_targets(names: Sequence[str], all_services: bool, vcenter_secret: str = "vcenter_password") -> list[str]:
    """Check the secrets named for rotation; BadInput (nothing changed) for any that cannot rotate."""
    if not names and not all_services:
        raise BadInput("name the secrets to rotate, or give --all-services", hint="list them: sudo viocli secrets list")
    targets = set(SERVICE_CREDENTIALS) if all_services else set()
    for name in names:
        if name == vcenter_secret:
            raise BadInput(f"{name} cannot be rotated by viocli: {OPERATOR_SECRET.format(name=name)}")
        if name in NOT_ROTATABLE:
            raise BadInput(f"{name} cannot be rotated by secrets rotate: {NOT_ROTATABLE[name]}")
        if name not in ROTATABLE:
            close = did_you_mean(name, ROTATABLE)
            hint = f"did you mean {close}?" if close else "list them with: sudo viocli secrets list"
            raise BadInput(f"no secret named {name!r} can be rotated", hint=hint)
        targets.add(name)
    return sorted(targets)


def rotate_secrets(
    settings: Settings,
    inventory_path: Path | None,
    name: str | None,
    names: Sequence[str],
    *,
    all_services: bool = False,
    verbosity: int = 0,
) -> RotateResult:
    """Generate new values for ``names`` (or every service credential), store them, push them.

    Holds the deployment's lock for the whole of it. Raises the run's error with a hint that the
    new values are stored and how to finish pushing them.
    """
    deployment = configurable_deployment(settings, inventory_path, name, "rotate secrets of")
    targets = rotation_targets(names, all_services, deployment.loaded.model.vcenter.password_secret)
    log = get_logger()
    with operation(settings, deployment.name, "secrets rotate"):
        store = SecretStore(settings.deployment_dir(deployment.name))
        values = store.load()
        for target in targets:
            values[target] = GENERATED[target]()
            REDACTOR.add(secret_values(values[target]))
        store.save(values)
        log.info("secrets rotate: new values stored for %s of %s", ", ".join(targets), deployment.name)
        try:
            result = run_ansible(settings, deployment, plans.rotate_secrets(deployment, targets), verbosity=verbosity)
        except ViocliError as error:
            error.hint = (
                f"the new values are stored; once the cause is fixed, push them with: "
                f"sudo viocli deployment configure -d {deployment.name}"
            )
            raise
    log.info("secrets rotate: pushed %s to %s (%d changes)", ", ".join(targets), deployment.name, result.changed)
    return RotateResult(deployment=deployment.name, rotated=targets, configured=result)
