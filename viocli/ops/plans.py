"""Command -> playbook mapping: one lifecycle verb, one playbook (kolla's rule).

Each function takes the command's already-parsed inputs and returns the exact runs it makes.
Roles read ``viocli_action`` to pick their action task file (deploy/config/start/stop/...).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from viocli.errors import BadInput
from viocli.inventory.modes import ROLES
from viocli.ops.context import Deployment
from viocli.runner.plan import PlaybookRun

SERVICE_ACTIONS = ("start", "stop", "restart")


def _split(values: Iterable[str]) -> tuple[str, ...]:
    """Accept both ``--tags a,b`` and ``--tags a --tags b``."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def check_limit(deployment: Deployment, targets: Sequence[str]) -> str | None:
    """Validate ``--limit`` targets against the deployment's nodes and groups; join them for Ansible."""
    names = [n.name for n in deployment.nodes]
    known = set(names) | set(ROLES)
    for target in targets:
        if target not in known:
            close = difflib.get_close_matches(target, sorted(known), n=1)
            hint = f"did you mean {close[0]}?" if close else f"nodes: {', '.join(names)}; roles: {', '.join(ROLES)}"
            raise BadInput(f"--limit {target}: no such node or role in deployment {deployment.name}", hint=hint)
    return ":".join(targets) or None


def deploy(deployment: Deployment, limit: Sequence[str] = ()) -> PlaybookRun:
    """Full configuration of new (or recovered) nodes."""
    return PlaybookRun("deploy.yml", limit=check_limit(deployment, limit), extravars={"viocli_action": "deploy"})


def configure(
    deployment: Deployment,
    *,
    tags: Iterable[str] = (),
    skip_tags: Iterable[str] = (),
    limit: Sequence[str] = (),
    check: bool = False,
    diff: bool = False,
) -> PlaybookRun:
    """Re-apply the inventory and custom.yml to the running deployment."""
    return PlaybookRun(
        "configure.yml",
        tags=_split(tags),
        skip_tags=_split(skip_tags),
        limit=check_limit(deployment, _split(limit)),
        extravars={"viocli_action": "configure"},
        check=check,
        diff=diff,
    )


def rotate_secrets(deployment: Deployment, names: Iterable[str]) -> PlaybookRun:
    """Push newly rotated secrets to every consumer: configure, which restarts only what reads them."""
    return PlaybookRun(
        "configure.yml", extravars={"viocli_action": "configure", "viocli_rotated_secrets": sorted(names)}
    )


def start(deployment: Deployment) -> PlaybookRun:
    """Start every service in dependency order (Galera from the most advanced node first)."""
    return PlaybookRun("start.yml", extravars={"viocli_action": "start"})


def stop(deployment: Deployment) -> PlaybookRun:
    """Stop every service in reverse dependency order."""
    return PlaybookRun("stop.yml", extravars={"viocli_action": "stop"})


def status(deployment: Deployment) -> PlaybookRun:
    """Collect health checks from every node (read-only)."""
    return PlaybookRun("status.yml", extravars={"viocli_action": "status"})


def services(deployment: Deployment, action: str, roles: Sequence[str] = (), nodes: Sequence[str] = ()) -> PlaybookRun:
    """Start, stop or restart the OpenStack services, optionally on some roles or nodes only."""
    if action not in SERVICE_ACTIONS:
        raise BadInput(f"unknown service action {action!r}; use one of {', '.join(SERVICE_ACTIONS)}")
    for role in roles:
        if role not in ROLES:
            raise BadInput(f"--role {role}: no such role; roles are {', '.join(ROLES)}")
    return PlaybookRun(
        "services.yml",
        limit=check_limit(deployment, [*roles, *nodes]),
        extravars={"viocli_action": action},
    )


def getlogs(deployment: Deployment, bundle_dir: str, since: str | None = None) -> PlaybookRun:
    """Fetch logs and rendered configs from every node in parallel into ``bundle_dir``."""
    extravars = {"viocli_action": "getlogs", "viocli_bundle_dir": bundle_dir}
    if since:
        extravars["viocli_logs_since"] = since
    return PlaybookRun("getlogs.yml", extravars=extravars)


def backup_database(deployment: Deployment, backup_name: str, nfs_volume: str) -> PlaybookRun:
    """Stream a consistent backup of the OpenStack database to the NFS volume."""
    return PlaybookRun(
        "backup_db.yml",
        extravars={"viocli_action": "backup", "viocli_backup_name": backup_name, "viocli_nfs_volume": nfs_volume},
    )


def restore_database(deployment: Deployment, backup_name: str, nfs_volume: str) -> PlaybookRun:
    """Restore the OpenStack database from a named backup on the NFS volume."""
    return PlaybookRun(
        "restore_db.yml",
        extravars={"viocli_action": "restore", "viocli_backup_name": backup_name, "viocli_nfs_volume": nfs_volume},
    )


def recover(deployment: Deployment, nodes: Sequence[str]) -> PlaybookRun:
    """Configure rebuilt nodes from scratch, and only them."""
    if not nodes:
        raise BadInput("recover needs at least one node or role")
    return PlaybookRun("deploy.yml", limit=check_limit(deployment, nodes), extravars={"viocli_action": "recover"})


def certificate_update(deployment: Deployment) -> PlaybookRun:
    """Push the external VIP's certificate to the load balancers and reload HAProxy."""
    return PlaybookRun(
        "configure.yml", tags=("haproxy_certificate",), limit="loadbalancer", extravars={"viocli_action": "configure"}
    )


def patch_install(deployment: Deployment, name: str, version: str) -> PlaybookRun:
    """Install an added patch on the nodes it targets."""
    return PlaybookRun(
        "patch.yml",
        extravars={"viocli_action": "patch", "viocli_patch_name": name, "viocli_patch_version": version},
    )
