"""``patch add|list|install|uninstall``: VIO's viopatch, rolling and with an automatic revert.

``add`` checks a patch file (format, manifest, every checksum, its signature against the trusted
keys) and copies it into the OMS's patch store. ``install`` checks the deployment first (healthy by
``status``, free space on every node it touches, a recent ``openstack_db`` backup), takes a vSphere
snapshot of each of those VMs, stages the patch's repository on them, then patches one node at a
time: load balancers, database nodes, controllers (drained from HAProxy), compute. After each node
the whole deployment is checked; when a node fails its check, every node touched so far goes back to
its snapshot, one at a time in reverse order (a controller drained first, each rejoining its
cluster and HAProxy before the next), so the data on the surviving members and the APIs stay up.
``uninstall`` puts back the versions the nodes had before the patch (kept by ``install``) the same way.

Every run is recorded (``patch_runs``) with the nodes done: a run that was killed resumes when the
same command runs again, and a revert that was interrupted carries on; no other patch command runs
on the deployment meanwhile.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from viocli.atomic import write_atomic_stream
from viocli.errors import BadInput, OperationFailed, Refused, ViocliError
from viocli.inventory.topology import Node
from viocli.logsetup import get_logger
from viocli.ops import plans
from viocli.ops.ansible import run_ansible
from viocli.ops.backup import OMS, backup_openstack_db, node_shell
from viocli.ops.configure import existing_deployment, status_refused
from viocli.ops.context import Deployment
from viocli.ops.deploy import wait_for_ssh
from viocli.ops.lifecycle import HEALTH_WAIT_SECONDS, health_report, locate_vms, vcenter_session
from viocli.ops.operation import Operation, operation
from viocli.ops.status import StatusReport, deployment_status
from viocli.patch.package import Patch, extract_payload, patch_file_name, read_patch
from viocli.patch.repository import (
    DebInfo,
    build_repository,
    kept_packages,
    previous_dir,
    store_dir,
    work_dir,
)
from viocli.runner.settings import close_ssh_masters
from viocli.settings import Settings
from viocli.state.store import PatchRecord, PatchRun, StateStore, now
from viocli.vsphere.power import NodeVM
from viocli.vsphere.snapshots import remove_snapshots, revert_to_snapshot, take_snapshots

# Nodes are patched role by role in this order (a node with several roles, as tiny's, at its first).
ROLE_ORDER = ("loadbalancer", "database", "controller", "compute")
PATCHABLE = ("running",)
RECENT_BACKUP = timedelta(hours=24)
ADD_SPACE_FACTOR = 2  # the OMS keeps the file and extracts its payload (seed: twice the patch's size)
NODE_SPACE_FACTOR = 3  # on a node: the staged repository, the unpacked packages, the kept old versions
NODE_SPACE_MARGIN = 64 << 20
NODE_CHECK_SECONDS = 60.0  # how long a freshly patched node gets to pass the deployment's checks
RUNNING, REVERTING = "running", "reverting"


def _quiet(_text: str) -> None:
    """The default ``say``: progress goes nowhere."""


def trusted_keys_dir(settings: Settings) -> Path:
    """The directory of public keys a signed patch must verify against (beside viocli.conf)."""
    return settings.config_file.parent / "trusted-keys"


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


# --- patch add ----------------------------------------------------------------------------------
@dataclass
class AddResult:
    """What ``patch add`` did."""

    patch: Patch
    stored: Path
    already: bool = False


def add(settings: Settings, location: Path, *, allow_unsigned: bool = False) -> AddResult:
    """Check the patch file at ``location`` and copy it into the OMS's patch store.

    Bad file (format, manifest, checksum, signature that does not verify): BadInput (2). Unsigned
    without ``allow_unsigned``, signed by a key that is not trusted, made for a newer viocli, a
    different file already added under the same name and version, not enough space: Refused (4).
    """
    if not location.is_file():
        raise BadInput(f"patch file {location} does not exist or is not a file")
    patch = read_patch(location, trusted_keys=trusted_keys_dir(settings), allow_unsigned=allow_unsigned)
    manifest = patch.manifest
    digest = _sha256(location)
    store = StateStore.open_writable(settings.db_path)
    try:
        known = store.patch(manifest.name, manifest.version)
    finally:
        store.close()
    directory = store_dir(settings)
    stored = directory / patch_file_name(manifest.name, manifest.version)
    if known is not None and known.sha256 == digest and stored.is_file():
        return AddResult(patch, stored, already=True)
    if known is not None and known.sha256 != digest:
        raise Refused(
            f"a different file of patch {manifest.name} version {manifest.version} is already added "
            f"(SHA-256 {known.sha256[:16]}..., this one {digest[:16]}...)",
            hint="a patch's name and version name one content: ask its publisher which one is right",
        )
    free = shutil.disk_usage(directory).free
    needed = ADD_SPACE_FACTOR * patch.size
    if free < needed:
        raise Refused(
            f"not enough space on the OMS for patch {manifest.name} {manifest.version}: {directory} has "
            f"{_mib(free)} free, the patch needs {_mib(needed)} (twice its size)",
            hint=f"free space in {directory.parent} (old patches: sudo viocli patch list), then add it again",
        )
    with operation(settings, OMS, f"patch add {manifest.name} {manifest.version}") as op:
        with location.open("rb") as source:
            write_atomic_stream(stored, source, 0o600)
        copied = read_patch(stored, trusted_keys=trusted_keys_dir(settings), allow_unsigned=True)
        op.store.add_patch(
            PatchRecord(
                name=manifest.name,
                version=manifest.version,
                type=manifest.type,
                description=manifest.description,
                file=str(stored),
                sha256=digest,
                size_bytes=copied.size,
                signed_by=patch.signed_by,
                added_at=now(),
            )
        )
        signed = f"signed by {patch.signed_by}" if patch.signed_by else "unsigned (accepted with --allow-unsigned)"
        op.note = f"{location} -> {stored}, {_mib(copied.size)}, {signed}"
    return AddResult(patch, stored)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- patch list ---------------------------------------------------------------------------------
@dataclass
class PatchRow:
    """One line of ``patch list``: the patch, and where it is installed."""

    name: str
    version: str
    type: str
    installed: str  # Yes, No, or Partial (k/n nodes)
    deployment: str | None  # the deployment the Installed column is about
    where: str  # the nodes it is on, or why not
    when: str | None  # when it was last installed, uninstalled or reverted
    added_at: str
    signed_by: str | None
    description: str
    history: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def installed_state(run: PatchRun | None) -> tuple[str, str, str | None]:
    """(Installed, where, when) of a patch on a deployment, from its latest run there."""
    if run is None:
        return "No", "never installed", None
    nodes = ", ".join(run.nodes)
    if run.status in (RUNNING, REVERTING):
        verb = "install" if run.action == "install" else "uninstall"
        doing = "being reverted" if run.status == REVERTING else f"{verb} unfinished"
        return f"Partial ({len(run.done)}/{len(run.nodes)} nodes)", f"{doing}: {', '.join(run.done) or 'none'}", None
    if run.action == "install" and run.status == "done":
        return "Yes", nodes, run.ended_at
    if run.action == "uninstall" and run.status == "done":
        return "No", f"uninstalled from {nodes}", run.ended_at
    if run.status == "reverted":
        was = "Yes" if run.action == "uninstall" else "No"
        cause = (run.message or "").split(": ", 1)[0]  # "<node> failed its check"; the rest is in the history
        return was, f"{run.action} reverted: {cause}".rstrip(": "), run.ended_at
    return "Unknown", f"{run.action} {run.status}: {run.message or ''}", run.ended_at


def list_patches(settings: Settings, deployment: str | None) -> list[PatchRow]:
    """Every added patch with its state on ``deployment`` (by default the default deployment, or the
    only one; with none known, Installed says No)."""
    store = StateStore.open_readonly(settings.db_path)
    if store is None:
        return []
    try:
        if deployment is None:
            known = [d.name for d in store.deployments()]
            deployment = settings.default_deployment or (known[0] if len(known) == 1 else None)
        runs = store.patch_runs(deployment) if deployment else []
        rows = []
        for record in store.patches():
            mine = [r for r in runs if (r.name, r.version) == (record.name, record.version)]
            installed, where, when = installed_state(mine[0] if mine else None)
            history = [f"{r.started_at} {r.action} {r.status}" + (f": {r.message}" if r.message else "") for r in mine]
            rows.append(
                PatchRow(
                    record.name,
                    record.version,
                    record.type,
                    installed,
                    deployment,
                    where,
                    when,
                    record.added_at,
                    record.signed_by,
                    record.description,
                    [f"{record.added_at} added", *reversed(history)],
                )
            )
        return rows
    finally:
        store.close()


# --- which nodes, which packages ----------------------------------------------------------------
def target_nodes(deployment: Deployment, roles: Sequence[str]) -> list[Node]:
    """The nodes holding one of ``roles``, in patch order: load balancers, database nodes, controllers,
    compute nodes (a node with several roles at its first); the deployment's order within a role."""
    wanted = [r for r in ROLE_ORDER if r in roles]

    def rank(node: Node) -> int:
        return min(wanted.index(g) for g in node.groups if g in wanted)

    nodes = [n for n in deployment.nodes if set(n.groups) & set(wanted)]
    return sorted(nodes, key=rank)


@dataclass
class _Work:
    """What one install or uninstall puts on the nodes."""

    action: str  # install or uninstall
    record: PatchRecord
    patch: Patch
    nodes: list[Node]
    packages: dict[str, list[DebInfo]]  # node -> packages at the versions to install
    repository: Path
    keep_dir: Path | None  # install: where each node's versions from before are kept
    playbook: Path | None
    snapshot: str

    @property
    def key(self) -> str:
        return f"{self.record.name}_{self.record.version}"

    def variables(self, keep_nodes: Sequence[str] = ()) -> dict[str, object]:
        """The patch role's variables (an empty value is left out: the role's default applies)."""
        values: dict[str, object] = {
            "patch_key": self.key,
            "patch_packages": {
                node: [{"package": p.package, "version": p.version} for p in packages]
                for node, packages in self.packages.items()
            },
            "patch_repo": str(self.repository),
            "patch_keep_dir": str(self.keep_dir) if self.keep_dir else "",
            "patch_keep_nodes": list(keep_nodes),
            "patch_playbook": str(self.playbook) if self.playbook else "",
            "patch_restart": list(self.patch.manifest.restart),
        }
        return {key: value for key, value in values.items() if value not in ("", [], {})}

    def total_bytes(self) -> int:
        return sum(p.path.stat().st_size for p in {p.path: p for ps in self.packages.values() for p in ps}.values())


def _added(store: StateStore, settings: Settings, name: str, version: str) -> tuple[PatchRecord, Patch]:
    record = store.patch(name, version)
    if record is None:
        known = ", ".join(f"{p.name} {p.version}" for p in store.patches()) or "none"
        raise BadInput(
            f"patch {name} version {version} is not added on this OMS (added: {known})",
            hint="add it first: sudo viocli patch add -l FILE",
        )
    # The stored file is checked again (a damaged store must not reach the nodes); its signature
    # was checked when it was added.
    patch = read_patch(Path(record.file), trusted_keys=trusted_keys_dir(settings), allow_unsigned=True)
    return record, patch


def _install_work(settings: Settings, deployment: Deployment, record: PatchRecord, patch: Patch) -> _Work:
    key = f"{record.name}_{record.version}"
    payload = work_dir(settings, key) / "payload"
    if payload.exists():
        shutil.rmtree(payload)
    extract_payload(patch, payload)
    debs = [payload / "packages" / p.file for p in patch.manifest.packages]
    repository = build_repository(work_dir(settings, key) / "repo", debs)
    nodes = target_nodes(deployment, patch.manifest.roles)
    infos = [DebInfo(p.package, p.version, repository / p.file) for p in patch.manifest.packages]
    playbook = payload / patch.manifest.playbook if patch.manifest.playbook else None
    return _Work(
        "install",
        record,
        patch,
        nodes,
        {n.name: infos for n in nodes},
        repository,
        previous_dir(settings, key, deployment.name),
        playbook,
        f"viocli-patch-{key}",
    )


def _uninstall_work(
    settings: Settings, deployment: Deployment, record: PatchRecord, patch: Patch, run: PatchRun
) -> _Work:
    key = f"{record.name}_{record.version}"
    kept = previous_dir(settings, key, deployment.name)
    nodes = [n for n in target_nodes(deployment, patch.manifest.roles) if n.name in run.nodes]
    packages = {n.name: kept_packages(kept / n.name) for n in nodes}
    missing = [name for name, found in packages.items() if not found]
    if missing:
        raise Refused(
            f"the versions from before patch {record.name} {record.version} are not kept for {', '.join(missing)} "
            f"(looked in {kept})",
            hint="a node rebuilt since the install runs the template's versions; patch it again or recover it",
        )
    repository = build_repository(kept / "repo", [p.path for found in packages.values() for p in found])
    packages = {
        name: [DebInfo(p.package, p.version, repository / p.path.name) for p in found]
        for name, found in packages.items()
    }
    return _Work("uninstall", record, patch, nodes, packages, repository, None, None, f"viocli-unpatch-{key}")


# --- preflight ----------------------------------------------------------------------------------
def _check_health(settings: Settings, deployment: Deployment, verb: str) -> None:
    report = deployment_status(settings, deployment.name)
    if report.failed:
        lines = [f"{r.collector_name}: {r.message}" for r in report.failed]
        raise Refused(
            f"deployment {deployment.name} is not healthy; {verb} needs it healthy: " + "; ".join(lines),
            hint="run sudo viocli deployment status, fix each FAILURE, then run the patch command again",
        )


def _check_node_space(settings: Settings, deployment: Deployment, work: _Work) -> None:
    needed = NODE_SPACE_FACTOR * work.total_bytes() + NODE_SPACE_MARGIN
    shell = node_shell(settings, deployment)
    short = []
    try:
        for node in work.nodes:
            answer = shell.run(node, "df -Pk /var/lib | tail -n 1", timeout=20)
            fields = answer.stdout.split()
            if answer.rc != 0 or len(fields) < 4 or not fields[3].isdigit():
                raise OperationFailed(f"cannot read the free space of /var/lib on {node.name}: {answer.reason()}")
            free = int(fields[3]) * 1024
            if free < needed:
                short.append(f"{node.name} has {_mib(free)} free in /var/lib")
    finally:
        shell.close()
    if short:
        raise Refused(
            f"not enough space on the nodes for patch {work.record.name} {work.record.version} "
            f"(it needs {_mib(needed)} on each): {'; '.join(short)}",
            hint="free space on those nodes (old logs in /var/log), then run the patch command again",
        )


def _recent_backup(store: StateStore, deployment: str) -> str | None:
    cutoff = datetime.now(UTC) - RECENT_BACKUP
    for backup in store.backups(deployment):
        if backup.kind != "openstack_db" or backup.status not in ("complete", "verified") or not backup.completed_at:
            continue
        if datetime.fromisoformat(backup.completed_at) >= cutoff:
            return f"{backup.name} on {backup.nfs_volume} (completed {backup.completed_at})"
    return None


# --- doing it -----------------------------------------------------------------------------------
@dataclass
class NodeDone:
    """One node patched (or unpatched) and checked."""

    node: str
    seconds: float


@dataclass
class PatchResult:
    """What ``patch install`` or ``uninstall`` did."""

    deployment: str
    name: str
    version: str
    action: str
    nodes: list[NodeDone] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # done by the run this one resumed
    resumed: bool = False
    already: bool = False
    backup: str | None = None
    snapshots_kept: bool = False
    report: StatusReport | None = None
    seconds: float = 0.0


class _Patcher:
    """The vSphere session, the Ansible runs and the state-store updates of one install or uninstall."""

    def __init__(
        self,
        settings: Settings,
        deployment: Deployment,
        op: Operation,
        si: Any,
        work: _Work,
        run: PatchRun | None,
        say: Callable[[str], None],
        verbosity: int,
    ):
        self.settings, self.deployment, self.op, self.si = settings, deployment, op, si
        self.work, self.run, self.say, self.verbosity = work, run, say, verbosity
        self.vms: dict[str, NodeVM] = {}

    def ansible(self, action: str, nodes: Sequence[str], keep_nodes: Sequence[str] = ()) -> None:
        run = plans.patch(self.deployment, action, nodes, self.work.variables(keep_nodes))
        run_ansible(self.settings, self.deployment, run, verbosity=self.verbosity)

    def locate(self) -> None:
        self.vms = locate_vms(self.si, self.op.store, self.deployment)
        missing = [n.name for n in self.work.nodes if self.vms[n.name].vm is None]
        if missing:
            raise Refused(f"vCenter has no VM for {', '.join(missing)}; patching needs every node it touches")

    def snapshot(self) -> None:
        vms = [self.vms[n.name] for n in self.work.nodes]
        self.say(f"taking snapshot {self.work.snapshot} of {', '.join(n.name for n in self.work.nodes)}")
        take_snapshots(
            self.si,
            vms,
            self.work.snapshot,
            f"viocli patch {self.work.action} {self.work.record.name} {self.work.record.version}: "
            "the node as it was before",
        )

    def stage(self, nodes: Sequence[Node]) -> None:
        keep: list[str] = []
        if self.work.keep_dir is not None:
            # A node already kept (an earlier, interrupted run) is not kept again: it may have the
            # patch's versions by now.
            keep = [n.name for n in nodes if not kept_packages(self.work.keep_dir / n.name)]
        names = [n.name for n in nodes]
        self.say(f"staging the patch's repository on {', '.join(names)}")
        self.ansible("stage", names, keep)
        if self.work.keep_dir is not None:
            # The kept packages hold the nodes' conffiles as they are (rendered, with passwords).
            for path in self.work.keep_dir.rglob("*"):
                path.chmod(0o700 if path.is_dir() else 0o600)

    def patch_node(self, node: Node) -> None:
        self.ansible("node", [node.name])
        report = health_report(self.settings, self.deployment.name, self.say, NODE_CHECK_SECONDS)
        if report.failed:
            raise _NodeCheckFailed("; ".join(f"{r.collector_name}: {r.message}" for r in report.failed), report)

    def revert(self, nodes: Sequence[str]) -> list[str]:
        """Put ``nodes`` back on their snapshots, last patched first, each back in its cluster and
        HAProxy before the next. Returns the nodes reverted."""
        reverted = []
        for name in nodes:
            node = self.deployment.node(name)
            assert node is not None
            started = time.monotonic()
            self.say(f"{name}: reverting to snapshot {self.work.snapshot}")
            try:
                self.ansible("drain", [name])
            except ViocliError as error:
                # A node that cannot be drained is already out of HAProxy's rotation (its checks fail).
                get_logger().warning("patch revert: draining %s failed: %s", name, error.message)
            revert_to_snapshot(self.si, self.vms[name], self.work.snapshot, power_on=True)
            wait_for_ssh({name: str(node.mgmt_ip)})
            close_ssh_masters(self.settings.deployment_dir(self.deployment.name))
            # The disk is the snapshot's: configured as before the patch; its services start, a
            # Galera member joins the cluster (IST or SST from a member that kept every write).
            self.say(f"{name}: back on its snapshot; starting its services")
            run_ansible(self.settings, self.deployment, plans.services(self.deployment, "start", nodes=[name]))
            self.ansible("rejoin", [name])
            assert self.run is not None
            self.op.store.patch_node_undone(self.run.id, name)
            reverted.append(name)
            self.say(f"{name}: reverted in {time.monotonic() - started:.0f} s")
        return reverted

    def remove_snapshots(self) -> None:
        removed = remove_snapshots(self.si, [self.vms[n.name] for n in self.work.nodes], self.work.snapshot)
        if removed:
            self.say(f"removed snapshot {self.work.snapshot} of {', '.join(removed)}")


class _NodeCheckFailed(Exception):
    def __init__(self, check: str, report: StatusReport | None = None):
        super().__init__(check)
        self.check = check
        self.report = report


def install(
    settings: Settings,
    name: str,
    version: str,
    deployment_name: str | None,
    *,
    backup_volume: str | None = None,
    skip_backup: bool = False,
    keep_snapshots: bool = False,
    confirm: Callable[[list[str]], bool],
    assume_yes: bool = False,
    say: Callable[[str], None] = _quiet,
    verbosity: int = 0,
) -> PatchResult:
    """Install an added patch on the deployment (see the module's docstring)."""
    return _apply(
        settings,
        "install",
        name,
        version,
        deployment_name,
        backup_volume=backup_volume,
        skip_backup=skip_backup,
        keep_snapshots=keep_snapshots,
        confirm=confirm,
        assume_yes=assume_yes,
        say=say,
        verbosity=verbosity,
    )


def uninstall(
    settings: Settings,
    name: str,
    version: str,
    deployment_name: str | None,
    *,
    keep_snapshots: bool = False,
    confirm: Callable[[list[str]], bool],
    assume_yes: bool = False,
    say: Callable[[str], None] = _quiet,
    verbosity: int = 0,
) -> PatchResult:
    """Put back, node by node, the package versions the deployment had before the patch."""
    return _apply(
        settings,
        "uninstall",
        name,
        version,
        deployment_name,
        skip_backup=True,
        keep_snapshots=keep_snapshots,
        confirm=confirm,
        assume_yes=assume_yes,
        say=say,
        verbosity=verbosity,
    )


def _apply(
    settings: Settings,
    action: str,
    name: str,
    version: str,
    deployment_name: str | None,
    *,
    backup_volume: str | None = None,
    skip_backup: bool = False,
    keep_snapshots: bool,
    confirm: Callable[[list[str]], bool],
    assume_yes: bool,
    say: Callable[[str], None],
    verbosity: int,
) -> PatchResult:
    started = time.monotonic()
    deployment, record = existing_deployment(settings, None, deployment_name, f"patch {action}")
    dname = deployment.name
    result = PatchResult(dname, name, version, action)
    reader = StateStore.open_writable(settings.db_path)
    try:
        patch_record, patch = _added(reader, settings, name, version)
        unfinished = reader.unfinished_patch_run(dname)
        runs = [r for r in reader.patch_runs(dname) if (r.name, r.version) == (name, version)]
        recent = _recent_backup(reader, dname)
    finally:
        reader.close()
    latest = runs[0] if runs else None
    if unfinished is not None and (unfinished.name, unfinished.version, unfinished.action) != (name, version, action):
        raise Refused(
            f"patch {unfinished.name} {unfinished.version} has an unfinished {unfinished.action} on {dname} "
            f"({len(unfinished.done)}/{len(unfinished.nodes)} nodes done, started {unfinished.started_at})",
            hint=f"finish it first: sudo viocli patch {unfinished.action} -p {unfinished.name} "
            f"-v {unfinished.version} -d {dname}",
        )
    if unfinished is None:
        # A done install, or an uninstall that was reverted, leaves the patch on the nodes.
        installed = installed_state(latest)[0] == "Yes"
        if action == "install" and installed:
            say(f"patch {name} {version} is already installed on {dname} ({latest.ended_at}); nothing to do")  # type: ignore[union-attr]
            result.already = True
            return result
        if action == "uninstall" and not installed:
            raise Refused(f"patch {name} {version} is not installed on {dname}; there is nothing to uninstall")
        if record.status not in PATCHABLE:
            raise status_refused(deployment, record.status, f"patch {action}", "it running")
    if action == "install":
        work = _install_work(settings, deployment, patch_record, patch)
    else:
        assert latest is not None
        work = _uninstall_work(settings, deployment, patch_record, patch, unfinished or latest)
    if not work.nodes:
        roles = ", ".join(patch.manifest.roles)
        raise Refused(f"patch {name} {version} applies to {roles}: deployment {dname} has no node with those roles")
    if unfinished is None:
        _check_health(settings, deployment, f"patch {action}")
        _check_node_space(settings, deployment, work)
        if action == "install":
            result.backup = _fallback_backup(dname, recent, backup_volume, skip_backup, say)
        lines = _plan_lines(work, dname, keep_snapshots, result.backup)
        if not assume_yes and not confirm(lines):
            raise Refused(f"patch {action} cancelled; nothing was changed")
        if assume_yes:
            for line in lines:
                say(line)
        if backup_volume is not None and action == "install":
            say(f"taking a backup of the databases on {backup_volume} first")
            done = backup_openstack_db(settings, dname, backup_volume, say=say)
            result.backup = f"{done.name} on {done.target}"
    else:
        result.resumed = True
        what = "revert" if unfinished.status == REVERTING else action
        say(
            f"resuming the unfinished {what} of patch {name} {version} on {dname} (started {unfinished.started_at}; "
            f"done: {', '.join(unfinished.done) or 'none'})"
        )
    with (
        operation(settings, dname, f"patch {action} {name} {version}") as op,
        vcenter_session(settings, deployment) as si,
    ):
        patcher = _Patcher(settings, deployment, op, si, work, unfinished, say, verbosity)
        patcher.locate()  # before the run is recorded: a refusal here leaves nothing unfinished
        if unfinished is None:
            run = op.store.start_patch_run(dname, name, version, action, [n.name for n in work.nodes], work.snapshot)
            if work.keep_dir is not None:
                # What an earlier install kept may predate another patch since: keep the versions of now.
                shutil.rmtree(work.keep_dir)
                work.keep_dir.mkdir(mode=0o700)
        else:
            run = unfinished
        patcher.run = run
        if run.status == REVERTING:
            _finish_revert(patcher, op, run, run.message or "an earlier run failed")
        patcher.snapshot()
        remaining = [n for n in work.nodes if n.name not in run.done]
        result.skipped = [n.name for n in work.nodes if n.name in run.done]
        if remaining:
            patcher.stage(remaining)
        for node in remaining:
            node_started = time.monotonic()
            say(f"{node.name}: {'installing' if action == 'install' else 'uninstalling'} patch {name} {version}")
            try:
                patcher.patch_node(node)
            except (ViocliError, _NodeCheckFailed) as error:
                check = error.check if isinstance(error, _NodeCheckFailed) else _failure_text(error)
                _fail_and_revert(patcher, op, run, node.name, check)
            op.store.patch_node_done(run.id, node.name)
            done = NodeDone(node.name, time.monotonic() - node_started)
            result.nodes.append(done)
            say(f"{node.name}: {action} done and checked in {done.seconds:.0f} s")
        result.report = health_report(settings, dname, say, HEALTH_WAIT_SECONDS)
        if result.report.failed:
            check = "; ".join(f"{r.collector_name}: {r.message}" for r in result.report.failed)
            _fail_and_revert(patcher, op, run, "the deployment", f"the final status: {check}", all_done=True)
        if keep_snapshots:
            result.snapshots_kept = True
            say(f"snapshot {work.snapshot} kept on every patched VM (--keep-snapshots): remove it in vCenter")
        else:
            patcher.remove_snapshots()
        op.store.finish_patch_run(run.id, "done")
        result.seconds = time.monotonic() - started
        op.note = (
            f"{action} of {name} {version} on {', '.join(n.name for n in work.nodes)} in {result.seconds:.0f} s"
            + (f" (resumed; {', '.join(result.skipped)} done before)" if result.skipped else "")
        )
    return result


def _failure_text(error: ViocliError) -> str:
    """What a failed step says: its message and the failed task's own words."""
    first = [d for d in error.details if not d.startswith("artifacts:")][:1]
    return "; ".join([error.message, *first])


def _fallback_backup(
    dname: str, recent: str | None, backup_volume: str | None, skip_backup: bool, say: Callable[[str], None]
) -> str | None:
    """What the install can fall back on: a new backup on ``backup_volume`` (taken once the operator
    said yes), else a recent one from the catalog; Refused without either unless ``skip_backup``."""
    if backup_volume is not None:
        return f"a new openstack_db backup on {backup_volume}, taken first"
    if recent is not None:
        return recent
    if skip_backup:
        say("no recent openstack_db backup: going on without one (--skip-backup)")
        return None
    raise Refused(
        f"no openstack_db backup of {dname} from the last {RECENT_BACKUP.total_seconds() / 3600:.0f} hours is in the "
        "catalog; a patch changes every node, so one is needed to fall back on",
        hint="add --backup NFS_VOLUME to take one now (or run sudo viocli backup openstack_db NFS_VOLUME first); "
        "--skip-backup goes on without one",
    )


def _plan_lines(work: _Work, dname: str, keep_snapshots: bool, backup: str | None) -> list[str]:
    verb = "install" if work.action == "install" else "uninstall"
    manifest = work.patch.manifest
    lines = [f"patch {verb} of {manifest.name} {manifest.version} ({manifest.type}) on deployment {dname}:"]
    if manifest.description:
        lines.append(f"  {manifest.description}")
    for node in work.nodes:
        packages = ", ".join(f"{p.package} {p.version}" for p in work.packages[node.name])
        lines.append(f"  {node.name} ({node.role_label}): {packages}")
    lines.append(
        f"  one node at a time, each checked before the next; snapshot {work.snapshot} of each VM first, "
        + ("kept afterwards" if keep_snapshots else "removed once every node passed")
    )
    lines.append("  a node that fails its check puts every node touched so far back on its snapshot")
    if work.action == "install":
        lines.append(f"  backup to fall back on: {backup or 'none (--skip-backup)'}")
    return lines


def _fail_and_revert(
    patcher: _Patcher, op: Operation, run: PatchRun, node: str, check: str, *, all_done: bool = False
) -> None:
    """A node failed its check: record it, revert every node touched, and end with exit 1."""
    message = f"{node} failed its check: {check}"
    # One transaction: a kill right here must not leave the failed node counted as patched.
    op.store.start_patch_revert(run.id, None if all_done else node, message)
    patcher.say(f"{message}; reverting every node touched so far")
    _finish_revert(patcher, op, run, message)


def _finish_revert(patcher: _Patcher, op: Operation, run: PatchRun, message: str) -> None:
    fresh = next(r for r in op.store.patch_runs(run.deployment) if r.id == run.id)
    touched = list(reversed(fresh.done))
    try:
        reverted = patcher.revert(touched)
    except ViocliError as error:
        op.note = f"{message}; the revert stopped: {error.message}"
        raise OperationFailed(
            f"patch {run.action} of {run.name} {run.version} on {run.deployment}: {message}; reverting the nodes "
            f"touched stopped: {error.message}",
            hint=f"fix the cause, then run the same command again: it carries on with the revert "
            f"(sudo viocli patch {run.action} -p {run.name} -v {run.version} -d {run.deployment})",
            details=error.details,
        ) from None
    report = health_report(patcher.settings, run.deployment, patcher.say, HEALTH_WAIT_SECONDS)
    healthy = not report.failed
    op.store.finish_patch_run(run.id, "reverted", message)
    state = (
        "the deployment is healthy again"
        if healthy
        else "the deployment is NOT healthy: " + ", ".join(r.collector_name for r in report.failed) + " report FAILURE"
    )
    op.note = f"{message}; reverted {', '.join(reverted) or 'nothing'} to snapshot {patcher.work.snapshot}"
    patcher.remove_snapshots()
    raise OperationFailed(
        f"patch {run.action} of {run.name} {run.version} on {run.deployment}: {message}. Every node touched "
        f"({', '.join(reverted) or 'none'}) is back on its snapshot and runs the versions from before; {state}",
        hint="the patch's check output is in the log (viocli.log); ask the patch's publisher, "
        + ("then run sudo viocli deployment status" if healthy else "and run sudo viocli deployment status"),
    )
