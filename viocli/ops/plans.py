"""Command -> playbook mapping: one lifecycle verb, one playbook (kolla's rule).

Each function takes the command's already-parsed inputs and returns the exact runs it makes.
Roles read ``viocli_action`` to pick their action task file (``roles/<role>/tasks/<action>.yml``).
Only verbs that have landed have a plan here, and every playbook a plan names ships in playbooks/
(tests/unit/test_role_contract.py).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from viocli.errors import BadInput
from viocli.inventory.modes import ROLES
from viocli.ops.context import Deployment
from viocli.runner.plan import PlaybookRun


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


def peers(deployment: Deployment, nodes: Sequence[str]) -> list[str]:
    """``nodes`` and every node that shares a service group with one of them, in the deployment's order:
    what a rebuilt node's deploy must run on (its cluster's members take it back)."""
    groups = {g for n in deployment.nodes if n.name in nodes for g in n.groups}
    return [n.name for n in deployment.nodes if n.name in nodes or groups & set(n.groups)]


def recover(deployment: Deployment, nodes: Sequence[str]) -> PlaybookRun:
    """Deploy rebuilt ``nodes`` from scratch, with their peers: Galera takes a new member by SST, RabbitMQ
    forgets a member's old self and the new one joins, the load balancers' VIPs and checks converge."""
    for name in nodes:
        if deployment.node(name) is None:
            raise BadInput(f"{name} is not a node of deployment {deployment.name}")
    return PlaybookRun(
        "deploy.yml",
        limit=check_limit(deployment, peers(deployment, nodes)),
        extravars={"viocli_action": "deploy"},
    )


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
    """Start every service that does not run, in dependency order (Galera from its most advanced member)."""
    return PlaybookRun("start.yml", extravars={"viocli_action": "start"})


def stop(deployment: Deployment) -> PlaybookRun:
    """Stop every service in reverse dependency order (Galera last, one member at a time)."""
    return PlaybookRun("stop.yml", extravars={"viocli_action": "stop"})


def cert_update(deployment: Deployment, sha1: str) -> PlaybookRun:
    """Serve a new external certificate: the standby load balancers first, one at a time, then the active one.

    The certificate itself travels in the run's secrets (``haproxy_external_pem``); its SHA-1
    fingerprint ``sha1`` (upper-case hex) is how each load balancer shows it serves it.
    """
    return PlaybookRun("cert-update.yml", extravars={"viocli_action": "cert_update", "haproxy_external_sha1": sha1})


SERVICE_PLAYBOOKS = {"start": "start.yml", "stop": "stop.yml", "restart": "restart.yml"}


def services(
    deployment: Deployment,
    action: str,
    *,
    roles: Sequence[str] = (),
    nodes: Sequence[str] = (),
    services: Sequence[str] = (),
) -> PlaybookRun:
    """Start, stop or restart (rolling) the services, on some roles or nodes, or some services, only.

    ``services`` are names of the service descriptors (viocli.services); the caller checks them.
    """
    if action not in SERVICE_PLAYBOOKS:
        raise BadInput(f"unknown service action {action!r}; use one of {', '.join(SERVICE_PLAYBOOKS)}")
    extravars: dict[str, object] = {"viocli_action": action}
    if services:
        extravars["viocli_service_filter"] = sorted(set(services))
    return PlaybookRun(SERVICE_PLAYBOOKS[action], limit=check_limit(deployment, [*roles, *nodes]), extravars=extravars)


def restore_db(deployment: Deployment, node: str, staged: str) -> PlaybookRun:
    """Galera back from the backup unpacked on ``node`` in ``staged``; the others join it one at a time."""
    if deployment.node(node) is None or "database" not in deployment.node(node).groups:  # type: ignore[union-attr]
        raise BadInput(f"{node} is not a database node of deployment {deployment.name}")
    return PlaybookRun(
        "restore.yml",
        extravars={"viocli_action": "restore", "mariadb_restore_node": node, "mariadb_restore_dir": staged},
    )


PATCH_ACTIONS = ("stage", "node", "drain", "rejoin")


def patch(deployment: Deployment, action: str, nodes: Sequence[str], variables: dict[str, object]) -> PlaybookRun:
    """One step of ``patch install|uninstall`` (playbooks/patch.yml) on ``nodes``: ``stage`` the
    repository on every node still to patch, patch one ``node``, ``drain`` a controller before its
    revert, ``rejoin`` it after. ``variables`` are the patch's (patch_key, patch_packages, ...)."""
    if action not in PATCH_ACTIONS:
        raise BadInput(f"unknown patch action {action!r}; use one of {', '.join(PATCH_ACTIONS)}")
    if not nodes:
        raise BadInput("a patch step needs at least one node")
    return PlaybookRun(
        "patch.yml", limit=check_limit(deployment, nodes), extravars={**variables, "viocli_action": action}
    )
