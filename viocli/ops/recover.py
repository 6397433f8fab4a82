"""``recover -n NODE... | -r ROLE... [-dn BACKUP -nfs NFS_VOLUME]``: lost nodes come back as newly deployed.

For each node, one at a time: what is left of its VM is powered off and deleted; the VM is cloned
again from the template with the same VM name, hostname and IPs, back into its role's anti-affinity
rule; the host key the new VM publishes in vCenter replaces the old one in known_hosts (checking stays
on); and the deploy playbook runs on the node and its peers (``plans.recover``): Galera takes it as a
new member by SST from the survivors, RabbitMQ forgets its old self and the new one joins, HAProxy and
keepalived find it at the same addresses, custom.yml and the certificates are applied.

One or two lost database nodes rejoin from the surviving members: no backup is needed, and none is
used (it would lose every write since). When no member survives, the three are rebuilt together and
the named backup is restored, as ``restore openstack_db`` does; without one the command refuses.

Each node is marked ``recovering`` in the state store before its VM is touched, and ``redeploying``
once its new VM exists: a recover that was interrupted completes when run again (the new VM is kept,
a half-made one is replaced).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from viocli.backup import galera
from viocli.backup.manifest import Manifest
from viocli.backup.naming import check_name
from viocli.errors import OperationFailed, Refused
from viocli.health.shell import SshShell
from viocli.inventory.modes import ROLE_LABELS
from viocli.inventory.topology import Node
from viocli.logsetup import get_logger
from viocli.ops import plans
from viocli.ops.ansible import run_ansible
from viocli.ops.backup import node_shell, opened, target_spec
from viocli.ops.configure import existing_deployment, status_refused
from viocli.ops.context import Deployment
from viocli.ops.deploy import wait_for_ssh
from viocli.ops.known_hosts import replace_host_key
from viocli.ops.lifecycle import HEALTH_WAIT_SECONDS, health_report, locate_vms, vcenter_session
from viocli.ops.operation import Operation, operation
from viocli.ops.restore import restore_galera, verified_backup
from viocli.ops.selection import select_nodes
from viocli.ops.status import StatusReport
from viocli.runner.settings import close_ssh_masters
from viocli.settings import Settings
from viocli.sshkeys import oms_keypair
from viocli.state.store import StateStore
from viocli.vsphere.guestinfo import wait_for_guestinfo
from viocli.vsphere.power import POWERED_ON, NodeVM
from viocli.vsphere.provision import provision
from viocli.vsphere.remove import destroy_vm

RECOVERABLE = ("running", "configuring")
# Node statuses of an unfinished recover: before its new VM exists, and after.
RECOVERING = "recovering"
REDEPLOYING = "redeploying"
# A Galera member left alone without quorum becomes a Primary component again (its lost peers' VMs
# are deleted first, so no other component can exist).
BOOTSTRAP_SQL = "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"


def _quiet(_text: str) -> None:
    """The default ``say``: progress goes nowhere."""


# --- what to recover: select_nodes, role_group (viocli/ops/selection.py) -----------------------


@dataclass
class Condition:
    """A node's state before it is recovered: why it is recovered, and whether it looked healthy."""

    node: Node
    vm: NodeVM
    reason: str
    healthy: bool = False
    resumed: bool = False  # an earlier recover got as far as its new VM: keep that VM

    def line(self) -> str:
        ips = ", ".join(self.node.addresses)
        return f"  {self.node.name} ({self.node.role_label}, VM {self.node.vm_name}, {ips}): {self.reason}"


def assess(shell: SshShell, vms: dict[str, NodeVM], statuses: dict[str, str], nodes: Sequence[Node]) -> list[Condition]:
    """Why each node is recovered, from vCenter, the state store and an SSH login with its known host key."""
    found = []
    for node in nodes:
        vm = vms[node.name]
        status = statuses.get(node.name)
        if status in (RECOVERING, REDEPLOYING):
            resumed = status == REDEPLOYING and vm.vm is not None
            found.append(Condition(node, vm, "an earlier recover of it did not finish", resumed=resumed))
        elif vm.vm is None:
            found.append(Condition(node, vm, "its VM is missing from vCenter"))
        elif vm.power_state != POWERED_ON:
            found.append(Condition(node, vm, f"its VM is {vm.power_state}"))
        else:
            answer = shell.run(node, "true", timeout=15)
            if answer.rc != 0:
                found.append(Condition(node, vm, f"it does not answer SSH ({answer.reason()})"))
            else:
                found.append(Condition(node, vm, "it looks healthy (its VM runs, it answers SSH)", healthy=True))
    return found


@dataclass
class DatabasePlan:
    """What recovering the chosen database nodes takes."""

    lost: list[Node]
    survivors: list[Node]
    whole_role: bool  # no member survives: the data comes from a backup
    bootstrap: str | None = None  # a survivor without quorum to make a Primary component again


def plan_database(shell: SshShell, deployment: Deployment, chosen: Sequence[Node]) -> DatabasePlan | None:
    """How the database role comes back (None when no database node is recovered); Refused when the
    members left outside the recover cannot give the new ones their data."""
    members = [n for n in deployment.nodes if "database" in n.groups]
    lost = [n for n in members if n in chosen]
    if not lost:
        return None
    survivors = [n for n in members if n not in chosen]
    if not survivors:
        return DatabasePlan(lost, [], True)
    states = galera.member_states(shell, survivors)
    answering = [s for s in states if s.status.get("wsrep_local_state_comment")]
    primary = [s for s in answering if s.status.get("wsrep_cluster_status") == "Primary"]
    if primary:
        return DatabasePlan(lost, survivors, False)
    if answering and len(answering) == len(survivors):
        # Every survivor runs but lost its quorum with the members being rebuilt: the most advanced
        # one becomes a Primary component again once their VMs are gone.
        best = max(answering, key=lambda s: int(s.status.get("wsrep_last_committed", "-1") or -1))
        return DatabasePlan(lost, survivors, False, bootstrap=best.node)
    found = "; ".join(f"{s.node}: {s.problem}" for s in states)
    raise Refused(
        f"the database members not being recovered cannot give the new ones their data: {found}",
        hint=f"start them (sudo viocli deployment start), or rebuild the whole role from a backup: "
        f"sudo viocli recover -r {ROLE_LABELS['database']} -dn BACKUP_NAME -nfs NFS_VOLUME",
    )


def _backups_hint(store: StateStore, deployment: str) -> str:
    backups = [
        b for b in store.backups(deployment) if b.kind == "openstack_db" and b.status in ("complete", "verified")
    ]
    if not backups:
        return (
            "no openstack_db backup of it is in the catalog: look on your NFS exports (viocli backup list NFS_VOLUME)"
        )
    shown = ", ".join(f"{b.name} on {b.nfs_volume}" for b in backups[-5:][::-1])
    return f"its backups (newest first; viocli backup list): {shown}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def last_duration(store: StateStore, deployment: str, node: str) -> str:
    """How long rebuilding ``node`` took last time (or creating the deployment), as the operator reads it."""
    for record in store.operations(deployment, limit=200):
        if record.result != "succeeded" or not record.ended_at:
            continue
        words = record.command.split()
        if (record.command.startswith("recover") and node in words) or record.command == "deployment create":
            seconds = (
                datetime.fromisoformat(record.ended_at) - datetime.fromisoformat(record.started_at)
            ).total_seconds()
            what = "its last recover" if record.command.startswith("recover") else "creating the deployment"
            return f"{what} took {_minutes(seconds)}"
    return "no earlier recover or create is on record to say how long"


def _only_controller_lines(store: StateStore, deployment: Deployment, chosen: Sequence[Node]) -> list[str]:
    controllers = [n for n in deployment.nodes if "controller" in n.groups]
    if len(controllers) != 1 or controllers[0] not in chosen:
        return []
    node = controllers[0]
    return [
        f"  {node.name} is the only controller of {deployment.name} ({deployment.loaded.model.mode} mode; it holds "
        f"{node.role_label}): every OpenStack API, the database and the message queue are unavailable until it "
        f"is rebuilt; {last_duration(store, deployment.name, node.name)}",
    ]


# --- doing it -----------------------------------------------------------------------------------
@dataclass
class Recovered:
    """One node brought back."""

    node: str
    reason: str
    seconds: float


@dataclass
class RecoverResult:
    """What ``recover`` did."""

    deployment: str
    recovered: list[Recovered] = field(default_factory=list)
    restored: str | None = None
    report: StatusReport | None = None


class _Rebuilder:
    """Deletes, clones and deploys the nodes of one recover, with one vCenter session and one SSH shell."""

    def __init__(
        self,
        settings: Settings,
        deployment: Deployment,
        op: Operation,
        si: Any,
        say: Callable[[str], None],
        verbosity: int,
    ):
        self.settings, self.deployment, self.op, self.si = settings, deployment, op, si
        self.say, self.verbosity = say, verbosity
        self.known_hosts = settings.deployment_dir(deployment.name) / "known_hosts"

    def remove(self, conditions: Sequence[Condition]) -> None:
        """Mark each node recovering, then delete what is left of its VM (a kept new VM stays)."""
        for condition in conditions:
            if condition.resumed:
                continue
            self.op.store.update_node(self.deployment.name, condition.node.name, status=RECOVERING)
            if condition.vm.vm is not None:
                self.say(
                    f"{condition.node.name}: powering off and deleting what is left of VM {condition.node.vm_name}"
                )
                started = time.monotonic()
                destroy_vm(self.si, condition.vm.vm, label=condition.vm.describe())
                condition.vm = NodeVM(condition.node.name, condition.node.vm_name)
                self.log(condition.node.name, "old VM deleted", started)

    def clone(self, nodes: Sequence[Node]) -> None:
        """Clone (or adopt the kept) VMs of ``nodes``, record them, put their new host keys in known_hosts."""
        _, public_key = oms_keypair(self.settings.state_dir)
        started = time.monotonic()
        made = provision(
            self.si,
            self.deployment.loaded.model,
            list(nodes),
            oms_public_key=public_key,
            say=self.say,
            peers=self.deployment.nodes,
        )
        for node in nodes:
            self.op.store.update_node(self.deployment.name, node.name, vm_id=made.vm_ids[node.name], status=REDEPLOYING)
        names = ", ".join(n.name for n in nodes)
        self.log(
            names,
            f"VM cloned ({', '.join(made.created) or 'none'}; kept: {', '.join(made.adopted) or 'none'}), "
            "running and reporting its IP",
            started,
        )
        keys = wait_for_guestinfo(self.si, made.vms)
        self.log(names, "host key published in vCenter", started)
        for node in nodes:
            replace_host_key(self.known_hosts, node.name, node.addresses, keys[node.name])
        self.say(f"{', '.join(n.name for n in nodes)}: new VM running; its host key is in known_hosts")
        wait_for_ssh({n.name: str(n.mgmt_ip) for n in nodes})
        self.log(names, "SSH answers", started)

    @staticmethod
    def log(what: str, step: str, since: float) -> None:
        """Each step's time in viocli's log (the operator's progress lines carry no times)."""
        get_logger().info("recover %s: %s after %.1f s", what, step, time.monotonic() - since)

    def deploy(self, nodes: Sequence[Node]) -> None:
        names = [n.name for n in nodes]
        run = plans.recover(self.deployment, names)
        close_ssh_masters(self.settings.deployment_dir(self.deployment.name))
        self.say(f"deploying {', '.join(names)} with its peers ({run.limit})")
        run_ansible(self.settings, self.deployment, run, verbosity=self.verbosity)
        for name in names:
            self.op.store.update_node(self.deployment.name, name, status="running")


def recover(
    settings: Settings,
    name: str | None,
    *,
    nodes: Sequence[str] = (),
    roles: Sequence[str] = (),
    backup_name: str | None = None,
    nfs_volume: str | None = None,
    force: bool = False,
    confirm: Callable[[list[str]], bool],
    say: Callable[[str], None] = _quiet,
    verbosity: int = 0,
) -> RecoverResult:
    """Rebuild the named nodes, or every node of the named roles (see the module's docstring).

    ``confirm`` is asked only when a node looks healthy (unless ``force``) or a backup will be restored.
    """
    deployment, record = existing_deployment(settings, None, name, "recover")
    chosen = select_nodes(deployment, nodes, roles, verb="recover")
    if backup_name is not None:
        check_name(backup_name, "openstack_db")
    if record.status not in RECOVERABLE:
        raise status_refused(deployment, record.status, "recover", "it running")
    dname = deployment.name
    command = "recover " + " ".join(n.name for n in chosen)
    result = RecoverResult(dname)
    with operation(settings, dname, command) as op:
        shell = node_shell(settings, deployment)
        try:
            with vcenter_session(settings, deployment) as si:
                vms = locate_vms(si, op.store, deployment)
                statuses = {r.name: r.status for r in op.store.nodes(dname)}
                conditions = assess(shell, vms, statuses, chosen)
                database = plan_database(shell, deployment, chosen)
                manifest = _backup_for(database, op.store, deployment, backup_name, nfs_volume, say)
                lines = [
                    f"recover in deployment {dname}: each node is rebuilt as newly deployed, keeping its names and IPs"
                ]
                lines += [c.line() for c in conditions]
                lines += _only_controller_lines(op.store, deployment, chosen)
                healthy = [c.node.name for c in conditions if c.healthy]
                if healthy:
                    lines.append(f"  {', '.join(healthy)} looks healthy: recovering replaces its disk with a new one")
                if manifest is not None:
                    lines.append(
                        f"  the database comes back from {manifest.name} (taken {manifest.created_at}): every change "
                        "made to the OpenStack databases since then is lost"
                    )
                ask = not force and (bool(healthy) or manifest is not None)
                if ask and not confirm(lines):
                    raise Refused("recover cancelled; nothing was changed")
                if not ask:
                    for line in lines:
                        say(line)
                op.note = "; ".join(f"{c.node.name}: {c.reason}" for c in conditions)
                rebuilder = _Rebuilder(settings, deployment, op, si, say, verbosity)
                by_name = {c.node.name: c for c in conditions}
                if database is not None and database.whole_role:
                    _whole_database(rebuilder, [by_name[n.name] for n in database.lost], result)
                    assert manifest is not None
                    with opened(target_spec(deployment, nfs_volume)) as target:
                        restore_galera(
                            settings, deployment, target, manifest, database.lost[0], say=say, verbosity=verbosity
                        )
                    result.restored = manifest.name
                    rest = [c for c in conditions if c.node not in database.lost]
                else:
                    rest = list(conditions)
                if database is not None and database.bootstrap is not None:
                    lost = [c for c in rest if c.node in database.lost]
                    rebuilder.remove(lost)
                    _bootstrap(shell, deployment, database.bootstrap, say)
                for condition in rest:
                    started = time.monotonic()
                    rebuilder.remove([condition])
                    rebuilder.clone([condition.node])
                    rebuilder.deploy([condition.node])
                    done = Recovered(condition.node.name, condition.reason, time.monotonic() - started)
                    result.recovered.append(done)
                    say(f"{done.node} recovered in {done.seconds:.0f} s")
        finally:
            shell.close()
        op.note = "; ".join(f"{r.node} ({r.reason}) rebuilt in {r.seconds:.0f} s" for r in result.recovered) + (
            f"; database restored from {result.restored}" if result.restored else ""
        )
        result.report = health_report(settings, dname, say, HEALTH_WAIT_SECONDS)
        if result.report.failed:
            raise OperationFailed(
                f"deployment {dname}: {', '.join(r.node for r in result.recovered)} rebuilt, but the deployment "
                f"is not healthy: {', '.join(r.collector_name for r in result.report.failed)} report FAILURE",
                hint="run the action of each FAILURE (sudo viocli deployment status)",
            )
    return result


def _backup_for(
    database: DatabasePlan | None,
    store: StateStore,
    deployment: Deployment,
    backup_name: str | None,
    nfs_volume: str | None,
    say: Callable[[str], None],
) -> Manifest | None:
    """The verified backup to restore when no database member survives; Refused without one."""
    whole = database is not None and database.whole_role
    if not whole:
        if backup_name is not None:
            say(
                f"{backup_name} is not needed and not used: the database nodes rejoin from the surviving members, "
                "keeping every write made since the backup"
            )
        return None
    if backup_name is None:
        names = ", ".join(n.name for n in database.lost)  # type: ignore[union-attr]
        raise Refused(
            f"every database node of {deployment.name} is recovered ({names}): no member is left to give them the "
            "data, so it must come from a backup; run again with -dn BACKUP_NAME -nfs NFS_VOLUME",
            hint=_backups_hint(store, deployment.name),
        )
    with opened(target_spec(deployment, nfs_volume)) as target:
        say(f"verifying {backup_name} on {target.spec}")
        return verified_backup(target, backup_name, deployment.name)


def _whole_database(rebuilder: _Rebuilder, conditions: list[Condition], result: RecoverResult) -> None:
    """Every database node at once: no quorum is left to keep, so they are deleted, cloned and deployed together."""
    started = time.monotonic()
    rebuilder.remove(conditions)
    nodes = [c.node for c in conditions]
    rebuilder.clone(nodes)
    rebuilder.deploy(nodes)
    seconds = time.monotonic() - started
    result.recovered += [Recovered(c.node.name, c.reason, seconds) for c in conditions]


def _bootstrap(shell: SshShell, deployment: Deployment, member: str, say: Callable[[str], None]) -> None:
    """Make the surviving ``member`` a Primary component again (its lost peers' VMs are gone)."""
    node = deployment.node(member)
    assert node is not None
    say(f"{member} lost its quorum with the deleted members: making it a Primary component again")
    done = shell.run(node, f'mariadb --batch -e "{BOOTSTRAP_SQL}"', timeout=60)
    if done.rc != 0:
        raise OperationFailed(
            f"could not make {member} a Primary component again: {done.reason()}",
            hint=f"check MariaDB on {member} (journalctl -u mariadb), then run the same recover again",
        )
