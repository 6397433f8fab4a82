"""``deployment status``: run every health collector at once against a deployment, read-only.

No lock, nothing written, no root needed: the state store is world-readable. What this user cannot
read (the secrets store, the OMS's SSH key, the deployment's known_hosts and CA, all root's) turns
the checks that need it into WARNINGs saying to run as root, never into a crash.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viocli.errors import BadInput, ViocliError
from viocli.health.api import ExternalApi, external_apis
from viocli.health.collectors import COLLECTORS, Collector, run_collectors
from viocli.health.context import StatusContext, Unavailable
from viocli.health.parallel import within
from viocli.health.result import Result, Status
from viocli.health.shell import SshShell
from viocli.logsetup import get_logger
from viocli.ops.context import CREATE_HINT, Deployment, _read_store, resolve_deployment
from viocli.ops.tls import client_ca_file
from viocli.secrets.store import SecretStore
from viocli.services import port_variable
from viocli.settings import Settings, share_dir

API_TIMEOUT = 5.0  # seconds per HTTP request through the external VIP
VCENTER_TIMEOUT = 8.0  # seconds for the vCenter login and the one property read


@dataclass
class StatusReport:
    """Every collector's result for one deployment."""

    deployment: str
    results: list[Result]
    elapsed_s: float

    @property
    def failed(self) -> list[Result]:
        """The results that are FAILURE (the command then exits 1)."""
        return [r for r in self.results if r.overall_status is Status.FAILURE]

    def counts(self) -> dict[str, int]:
        """How many results have each status."""
        return {str(s): sum(r.overall_status is s for r in self.results) for s in Status}


def deployment_status(
    settings: Settings, explicit_name: str | None, collectors: Sequence[Collector] = COLLECTORS
) -> StatusReport:
    """Check the deployment (``-d NAME``, else the default or only one) with every collector at once."""
    started = time.monotonic()
    with _read_store(settings) as store:
        if explicit_name is None and settings.default_deployment is None and not (store and store.deployments()):
            raise BadInput("no deployment exists on this OMS: there is nothing to check", hint=CREATE_HINT)
        deployment = resolve_deployment(settings, store, None, explicit_name)
        vm_ids = {r.name: r.vm_id for r in store.nodes(deployment.name)} if store else {}
    ctx = status_context(settings, deployment, vm_ids)
    try:
        results = run_collectors(ctx, collectors)
    finally:
        if isinstance(ctx.shell, SshShell):
            ctx.shell.close()
    report = StatusReport(deployment.name, results, time.monotonic() - started)
    log = get_logger()
    for result in results:
        log.info("status %s %s %s: %s", deployment.name, result.collector_name, result.overall_status, result.message)
    return report


def _unreadable(path: Path, what: str) -> Unavailable | None:
    """Why ``path`` cannot be read (as an Unavailable), or None when it can."""
    try:
        with open(path, "rb"):
            return None
    except FileNotFoundError:
        return Unavailable(f"{what} {path} does not exist", needs_root=False)
    except PermissionError:
        return Unavailable(f"{what} {path} is readable by root only", needs_root=os.geteuid() != 0)
    except OSError as error:
        return Unavailable(f"cannot read {what} {path}: {error.strerror}", needs_root=False)


class _Secrets:
    """The deployment's secrets as far as this user may read them (read once, never written)."""

    def __init__(self, deployment_dir: Path, deployment: str):
        self.deployment = deployment
        self.problem: Unavailable | None = None
        self.values: dict[str, Any] = {}
        try:
            self.values = SecretStore(deployment_dir).load()
        except ViocliError as error:
            needs_root = os.geteuid() != 0
            why = f"the secrets store of {deployment} is readable by root only" if needs_root else error.message
            self.problem = Unavailable(why, needs_root=needs_root, hint=error.hint or "")

    def __call__(self, name: str) -> str:
        if self.problem is not None:
            raise self.problem.again()
        if name not in self.values:
            raise Unavailable(
                f"the secret {name} of {self.deployment} is not stored",
                needs_root=False,
                hint=f"sudo viocli secrets set {name} -d {self.deployment}",
            )
        return str(self.values[name])


def status_context(settings: Settings, deployment: Deployment, vm_ids: Mapping[str, str | None]) -> StatusContext:
    """Everything the collectors need, with each thing this user cannot read recorded as a problem."""
    name = deployment.name
    model = deployment.loaded.model
    deployment_dir = settings.deployment_dir(name)
    playbook_dir = share_dir("playbooks")

    key = settings.state_dir / "ssh" / "id_ed25519"
    known_hosts = deployment_dir / "known_hosts"
    shell_problem = _unreadable(key, "the OMS's SSH key") or _unreadable(known_hosts, f"the known_hosts of {name}")
    if shell_problem is not None and not shell_problem.needs_root:
        shell_problem.hint = "sudo viocli deployment create -i FILE (it completes a half-created deployment)"
    shell = SshShell(key, known_hosts, model.ssh_user) if shell_problem is None else None

    ca_file = client_ca_file(model, deployment_dir)
    api_problem = _unreadable(ca_file, "the CA certificate of the external VIP") if ca_file else None
    if api_problem is not None and not api_problem.needs_root:
        api_problem.hint = "sudo viocli deployment create -i FILE (it generates the CA and completes the deployment)"
    host = model.vips.external_fqdn or str(model.vips.external)  # as the public endpoints name it
    api = ExternalApi(host, ca_file, timeout=API_TIMEOUT) if api_problem is None else None

    secrets = _Secrets(deployment_dir, name)

    def power_states() -> dict[str, str | None]:
        from viocli.health.vcenter import power_states as read_power_states
        from viocli.vsphere.connection import connect

        vc = model.vcenter
        password = secrets(vc.password_secret)
        vc_ca = vc.tls.ca_file
        if vc_ca is not None and not vc_ca.is_absolute():
            vc_ca = deployment.loaded.path.parent / vc_ca
        if vc_ca is not None and (problem := _unreadable(vc_ca, "the vCenter CA file")) is not None:
            raise problem

        def work() -> dict[str, str | None]:
            from pyVim.connect import Disconnect

            si = connect(vc.host, vc.port, vc.user, password, ca_file=vc_ca, insecure=vc.tls.insecure)
            try:
                return read_power_states(si, vc.datacenter, deployment.nodes, vm_ids)
            finally:
                Disconnect(si)

        return within(VCENTER_TIMEOUT, work, f"vCenter {vc.host}:{vc.port}")

    return StatusContext(
        deployment=name,
        model=model,
        nodes=deployment.nodes,
        shell=shell,
        secrets=secrets,
        power_states=power_states,
        api=api,
        external_apis=external_apis(playbook_dir, deployment.loaded.custom_vars),
        variables={"memcached_port": port_variable("memcached_port", deployment.loaded.custom_vars, playbook_dir)},
        shell_problem=shell_problem,
        api_problem=api_problem,
    )
