"""``deployment create``: validate, plan, provision, learn host keys, configure, record.

Every step is idempotent, so after a failure anywhere the same command resumes and completes:
existing VMs are adopted, the playbooks converge, the state store keeps IPs and VM ids.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viocli.errors import NodesUnreachable, OperationFailed, Refused
from viocli.health.api import Check, check_api, check_token, external_apis, tls_context, wait_healthy
from viocli.inventory.load import load_inventory
from viocli.ops import plans
from viocli.ops.ansible import load_secrets, run_ansible
from viocli.ops.context import Deployment, resolve_deployment
from viocli.ops.known_hosts import write_known_hosts
from viocli.ops.operation import operation
from viocli.ops.tls import client_ca_file
from viocli.runner.engine import RunResult
from viocli.settings import Settings, share_dir
from viocli.sshkeys import oms_keypair
from viocli.state.store import StateStore
from viocli.vsphere.connection import connect
from viocli.vsphere.guestinfo import wait_for_guestinfo
from viocli.vsphere.provision import ProvisionResult, provision

SSH_WAIT_SECONDS = 300


@dataclass
class CreateResult:
    deployment: Deployment
    provisioned: ProvisionResult
    configured: RunResult
    health: list[Check]


def plan_lines(deployment: Deployment) -> list[str]:
    """The plan shown before anything is created: every VM with its IPs, size and datastore."""
    lines = [f"deployment {deployment.name} ({deployment.loaded.model.mode} mode), {len(deployment.nodes)} VMs:"]
    for node in deployment.nodes:
        api = f", api {node.api_ip}" if node.api_ip else ""
        lines.append(
            f"  {node.name:<15} {node.vm_name:<32} {node.mgmt_ip}{api}  {node.vcpus} vCPU, "
            f"{node.memory_mb // 1024} GiB, {node.disk_gb} GB on {node.datastore}"
        )
    return lines


def connect_vcenter(deployment: Deployment, password: str) -> Any:
    """Log in to the deployment's vCenter (a relative ``tls.ca_file`` is next to the inventory)."""
    vc = deployment.loaded.model.vcenter
    ca_file = vc.tls.ca_file
    if ca_file is not None and not ca_file.is_absolute():
        ca_file = deployment.loaded.path.parent / ca_file
    return connect(vc.host, vc.port, vc.user, password, ca_file=ca_file, insecure=vc.tls.insecure)


def wait_for_ssh(addresses: Mapping[str, str], timeout: float = SSH_WAIT_SECONDS) -> None:
    """Wait until every node's sshd answers with its banner (no vSphere event says so)."""
    pending = dict(addresses)
    deadline = time.monotonic() + timeout
    while pending:
        for name, address in list(pending.items()):
            try:
                with socket.create_connection((address, 22), timeout=3) as conn:
                    conn.settimeout(3)
                    if conn.recv(4).startswith(b"SSH-"):
                        del pending[name]
            except OSError:
                continue
        if pending:
            if time.monotonic() > deadline:
                raise NodesUnreachable(
                    f"SSH does not answer on: {', '.join(f'{n} ({a})' for n, a in sorted(pending.items()))}",
                    hint="check the VMs' networking from the OMS (port group, IP, gateway), then run again",
                )
            time.sleep(1)  # a booting guest: retry once a second until the deadline


def create(
    settings: Settings,
    inventory_path: Path,
    *,
    confirm: Callable[[list[str]], bool],
    say: Callable[[str], None],
    cli_vars: Mapping[str, Any] | None = None,
    verbosity: int = 0,
) -> CreateResult:
    """Create (or complete) the deployment described by ``inventory_path``."""
    loaded = load_inventory(inventory_path)
    with operation(settings, loaded.name, "deployment create") as op:
        store: StateStore = op.store
        deployment = resolve_deployment(settings, store, inventory_path, None)
        if not confirm(plan_lines(deployment)):
            raise Refused("deployment create cancelled; nothing was changed")
        store.register_deployment(deployment.name, inventory_path, deployment.loaded.model.mode)
        store.record_nodes(deployment.name, deployment.nodes)
        store.set_deployment_status(deployment.name, "provisioning")
        secrets = load_secrets(settings, deployment)  # generates on first use; needs the vCenter password
        _, public_key = oms_keypair(settings.state_dir)
        si = connect_vcenter(deployment, secrets["vcenter_password"])
        result = provision(si, deployment.loaded.model, deployment.nodes, oms_public_key=public_key, say=say)
        for name, vm_id in result.vm_ids.items():
            store.update_node(deployment.name, name, vm_id=vm_id, status="running")
        say("reading the nodes' SSH host keys from vCenter")
        keys = wait_for_guestinfo(si, result.vms)
        entries = {}
        for node in deployment.nodes:
            entries[node.name] = (node.addresses, keys[node.name])
        write_known_hosts(settings.deployment_dir(deployment.name) / "known_hosts", entries)
        wait_for_ssh({n.name: str(n.mgmt_ip) for n in deployment.nodes})
        store.set_deployment_status(deployment.name, "configuring")
        say("configuring the nodes")
        configured = run_ansible(settings, deployment, plans.deploy(deployment), cli_vars=cli_vars, verbosity=verbosity)
        store.set_deployment_status(deployment.name, "running")
        say("checking the APIs through the external VIP")
        checks = check_health(settings, deployment, secrets)
        failed = [c for c in checks if not c.healthy]
        if failed:
            raise OperationFailed(
                f"deployment {deployment.name} is deployed but not healthy: "
                + "; ".join(f"{c.name}: {c.detail}" for c in failed),
                hint="look at the service's log on the controllers, fix, then run: sudo viocli deployment configure",
            )
        return CreateResult(deployment, result, configured, checks)


def check_health(settings: Settings, deployment: Deployment, secrets: Mapping[str, Any]) -> list[Check]:
    """Every external API answers over verified TLS and the admin gets a token (waits for a while)."""
    model = deployment.loaded.model
    ca_file = client_ca_file(model, settings.deployment_dir(deployment.name))
    context = tls_context(ca_file)
    host = model.vips.external_fqdn or str(model.vips.external)  # as the public endpoints name it
    apis = external_apis(share_dir("playbooks"), deployment.loaded.custom_vars)
    checks: list[Callable[[], Check]] = [functools.partial(check_api, host, name, port, context) for name, port in apis]
    checks.append(
        functools.partial(
            check_token,
            host,
            model.openstack.admin_user,
            model.openstack.admin_project,
            secrets["keystone_admin_password"],
            context,
        )
    )
    return wait_healthy(checks)
