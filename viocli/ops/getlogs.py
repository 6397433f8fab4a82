"""``deployment getlogs``: a support bundle from every node at once and from the OMS, secrets removed.

1. What vCenter says of each VM is read first: a node it says is powered off or missing is listed as
   such, never waited for.
2. Each node tells how much it would send (files capped); the target must have that much free, else
   the command refuses (exit 4) before anything is written.
3. Every node streams one tar of its logs, configuration and diagnostics (``viocli.bundle.remote``),
   all nodes at once; each file is redacted (every value of the secrets store, password-like keys,
   URL credentials, private keys) and written to the bundle as it arrives.
4. The OMS's part is added, then ``manifest.json``: every file with its node, source, size and
   SHA-256, and per node what could not be collected and why.

The bundle is read-only work: it takes no deployment lock, so it can be run while another command
hangs. Exit 1 only when nothing at all came from a node vCenter says is powered on (or could not say).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from viocli import __version__
from viocli.backup.target import BackupTarget, DirectoryTarget, open_target
from viocli.bundle import oms, remote
from viocli.bundle.archive import BundleWriter, Entry
from viocli.bundle.plan import DEFAULT_CAP, NodePlan, node_plan
from viocli.bundle.redaction import BundleRedactor
from viocli.errors import BadInput, OperationFailed, Refused, ViocliError
from viocli.health.shell import SshShell
from viocli.inventory.topology import Node
from viocli.logsetup import get_logger
from viocli.ops.backup import node_shell
from viocli.ops.configure import existing_deployment
from viocli.ops.context import Deployment
from viocli.ops.lifecycle import vcenter_session
from viocli.ops.selection import select_nodes
from viocli.secrets import catalog
from viocli.secrets.store import SecretStore
from viocli.services import load_services
from viocli.settings import Settings
from viocli.state.store import StateStore
from viocli.vsphere.power import POWERED_ON, find_vms
from viocli.vsphere.vm_report import vm_report

VCENTER_HISTORY = timedelta(days=1)  # vCenter tasks of the last day
MIB = 1024 * 1024
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _quiet(_text: str) -> None:
    """The default ``say``: progress goes nowhere."""


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``--since``: a duration back from now (``90m``, ``2h``, ``3d``, ``1w``) or a UTC date or time
    (``2026-11-20``, ``2026-11-20T08:00``); epoch seconds. BadInput for anything else."""
    if text is None:
        return None
    value = text.strip()
    now = time.time() if now is None else now
    match = _DURATION.match(value.lower())
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"--since {text}: not a duration or a date",
            hint="give a duration back from now (30m, 2h, 3d, 1w) or a UTC date or time (2026-11-20T08:00)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.timestamp() > now:
        raise BadInput(f"--since {text}: that is in the future")
    return moment.timestamp()


def bundle_name(deployment: str, moment: datetime) -> str:
    """``viocli-logs-<deployment>-<UTC timestamp>.tar.gz``."""
    return f"viocli-logs-{deployment}-{moment.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


def secret_values(settings: Settings, deployment: str) -> list[str]:
    """Every value of the deployment's secrets store (a list of keys flattened)."""
    stored = SecretStore(settings.deployment_dir(deployment)).load()
    return [text for value in stored.values() for text in catalog.secret_values(value)]


@dataclass
class NodeSummary:
    """How one node's collection went."""

    node: str
    role: str
    power_state: str | None  # as vCenter said it (None: vCenter could not be asked)
    status: str = "not collected"  # collected, partly collected, powered off, missing from vCenter, unreachable
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Nothing came from a node that is (or may be) powered on."""
        return self.files == 0 and self.power_state in (POWERED_ON, None)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's form."""
        return {
            "role": self.role,
            "power_state": self.power_state,
            "status": self.status,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "problems": self.problems,
            "absent": self.absent,
        }


@dataclass
class GetlogsResult:
    """The bundle written and how each node's part went."""

    deployment: str
    location: str  # the bundle's full path or NFS spec
    size: int
    nodes: list[NodeSummary]
    oms: bool
    seconds: float
    redactions: int
    oms_files: int = 0
    oms_bytes: int = 0

    @property
    def failed(self) -> list[NodeSummary]:
        """Nodes vCenter says are on (or could not say) from which nothing at all was collected."""
        return [n for n in self.nodes if n.failed]


def _open(output: Path | None, nfs_volume: str | None) -> BackupTarget:
    if output is not None and nfs_volume is not None:
        raise BadInput("-o and --nfs both given: the bundle goes to one place", hint="give one of them")
    if nfs_volume is not None:
        return open_target(nfs_volume)
    directory = (output or Path.cwd()).absolute()
    if not directory.is_dir():
        raise BadInput(f"-o {directory}: no such directory", hint="create it first, or give another one")
    return DirectoryTarget(directory)


def _vcenter(settings: Settings, deployment: Deployment) -> tuple[dict[str, str | None], dict | None, str | None]:
    """(node -> power state, vCenter's report, why vCenter could not be asked)."""
    reader = StateStore.open_readonly(settings.db_path)
    try:
        recorded = {r.name: r.vm_id for r in reader.nodes(deployment.name)} if reader else {}
    finally:
        if reader:
            reader.close()
    try:
        with vcenter_session(settings, deployment) as si:
            vms = find_vms(si, deployment.loaded.model.vcenter.datacenter, deployment.nodes, recorded)
            states = {name: (found.power_state if found.vm is not None else "missing") for name, found in vms.items()}
            report = vm_report(si, vms, since=datetime.now(UTC) - VCENTER_HISTORY)
            return states, report, None
    except Exception as error:  # any vCenter fault: the bundle is still made, and says why this part is missing
        reason = getattr(error, "message", None) or getattr(error, "msg", None) or str(error)
        return {}, None, f"{type(error).__name__}: {reason}"


class _Collection:
    """One node's stream going into the bundle."""

    def __init__(self, writer: BundleWriter, plan: NodePlan, summary: NodeSummary):
        self.writer = writer
        self.plan = plan
        self.summary = summary
        self.entries: dict[str, Entry] = {}  # cut key (path, or command:name) -> its entry

    def handle(self, kind: str, name: str, data: bytes) -> None:
        node = self.plan.node
        if kind == "command":
            entry = self.writer.add(
                f"{node}/commands/{name}.txt", data, node=node, source=f"command: {self.plan.command(name)}"
            )
            self.entries[f"command:{name}"] = entry
        else:
            entry = self.writer.add(f"{node}/files{name}", data, node=node, source=f"file: {name}")
            self.entries[name] = entry
        self.summary.files += 1
        self.summary.bytes += entry.size

    def run(self, shell: SshShell, node: Node) -> None:
        began = time.monotonic()
        stream = remote.collect(shell, node, self.plan, self.handle)
        for key, (size, kept) in stream.cuts.items():
            if key in self.entries:
                self.entries[key].cut = {"original_size": size, "kept_last_bytes": kept}
        failed = [f"{name}: exit status {rc}" for name, (rc, _) in sorted(stream.commands.items()) if rc != 0]
        self.summary.problems += [*stream.errors, *failed]
        self.summary.absent = stream.absent
        self.summary.seconds = time.monotonic() - began
        if self.summary.files == 0:
            self.summary.status = "unreachable" if stream.errors else "nothing collected"
        else:
            self.summary.status = "partly collected" if self.summary.problems else "collected"


def getlogs(
    settings: Settings,
    name: str | None,
    *,
    nodes: Sequence[str] = (),
    roles: Sequence[str] = (),
    non_node_logs: bool = False,
    since: str | None = None,
    recent_logs: bool = False,
    output: Path | None = None,
    nfs_volume: str | None = None,
    cap: int = DEFAULT_CAP,
    workers: int | None = None,
    say: Callable[[str], None] = _quiet,
) -> GetlogsResult:
    """Write the support bundle (see the module's docstring); ``workers=1`` collects node by node."""
    began = time.monotonic()
    deployment, _ = existing_deployment(settings, None, name, "collect logs from")
    since_epoch = parse_since(since)
    want_nodes = bool(nodes or roles) or not non_node_logs
    want_oms = non_node_logs or not (nodes or roles)
    chosen = (
        select_nodes(deployment, nodes, roles, verb="collect", flags=("--node", "--role"))
        if nodes or roles
        else (list(deployment.nodes) if want_nodes else [])
    )
    target = _open(output, nfs_volume)
    try:
        return _collect(
            settings, deployment, chosen, want_oms, target,
            since_epoch=since_epoch, recent=recent_logs, cap=cap, workers=workers, say=say, began=began,
        )  # fmt: skip
    finally:
        target.close()


@dataclass
class _Job:
    """One getlogs run: what it collects from where, and the nodes' summaries as they fill in."""

    settings: Settings
    deployment: Deployment
    chosen: list[Node]
    want_oms: bool
    target: BackupTarget
    plans: dict[str, NodePlan]
    summaries: dict[str, NodeSummary]
    report: dict | None
    vcenter_error: str | None
    workers: int | None
    say: Callable[[str], None]
    shell: SshShell | None = None

    @property
    def reachable(self) -> list[Node]:
        """The chosen nodes vCenter says are on, or all of them when it could not say."""
        return [n for n in self.chosen if self.summaries[n.name].power_state in (POWERED_ON, None)]


def _collect(
    settings: Settings,
    deployment: Deployment,
    chosen: list[Node],
    want_oms: bool,
    target: BackupTarget,
    *,
    since_epoch: float | None,
    recent: bool,
    cap: int,
    workers: int | None,
    say: Callable[[str], None],
    began: float,
) -> GetlogsResult:
    dname = deployment.name
    say(f"asking vCenter about the VMs of {dname}")
    states, report, vcenter_error = _vcenter(settings, deployment)
    if vcenter_error:
        say(f"vCenter could not be asked ({vcenter_error}): every node is tried")
    services = load_services(deployment.loaded.custom_vars)
    job = _Job(
        settings, deployment, chosen, want_oms, target,
        plans={n.name: node_plan(n, services, since=since_epoch, recent_only=recent, cap=cap) for n in chosen},
        summaries={n.name: NodeSummary(n.name, n.role_label, states.get(n.name)) for n in chosen},
        report=report, vcenter_error=vcenter_error, workers=workers, say=say,
    )  # fmt: skip
    for summary in job.summaries.values():
        if summary.power_state == "missing":
            summary.status = "missing from vCenter"
        elif summary.power_state not in (POWERED_ON, None):
            summary.status = "powered off"
    job.shell = node_shell(settings, deployment) if job.reachable else None
    try:
        needed = _check_space(job)
        say(f"the bundle needs up to {needed / MIB:.0f} MiB at {target.spec} (before compression)")
        moment = datetime.now(UTC)
        name = bundle_name(dname, moment)
        redactor = BundleRedactor(secret_values(settings, dname))
        writer = BundleWriter(target, name, redactor, top=name.removesuffix(".tar.gz"))
        try:
            _gather(job, writer)
            manifest = {
                "deployment": dname,
                "created": moment.isoformat(),
                "viocli_version": __version__,
                "options": {
                    "nodes": [n.name for n in chosen],
                    "oms": want_oms,
                    "since": datetime.fromtimestamp(since_epoch, UTC).isoformat() if since_epoch else None,
                    "recent_logs_only": recent,
                    "cap_bytes": cap,
                },
                "vcenter_error": vcenter_error,
                "nodes": {s.node: s.to_dict() for s in job.summaries.values()},
                "redaction": {"replacements": sum(e.redactions for e in writer.entries)},
            }
            size = writer.finish(manifest)
        except BaseException:
            writer.abandon()
            raise
    finally:
        if job.shell is not None:
            job.shell.close()
    location = f"{target.spec.rstrip('/')}/{name}"
    get_logger().info("getlogs %s: %s (%d bytes) in %.1f s", dname, location, size, time.monotonic() - began)
    return GetlogsResult(
        deployment=dname,
        location=location,
        size=size,
        nodes=list(job.summaries.values()),
        oms=want_oms,
        seconds=time.monotonic() - began,
        redactions=sum(e.redactions for e in writer.entries),
        oms_files=sum(1 for e in writer.entries if e.node == "oms"),
        oms_bytes=sum(e.size for e in writer.entries if e.node == "oms"),
    )


def _check_space(job: _Job) -> int:
    """The bytes the bundle may need (its files before compression); Refused if the target has less."""
    reachable, shell = job.reachable, job.shell
    estimates: dict[str, tuple[int, int] | str] = {}
    if reachable and shell is not None:
        with ThreadPoolExecutor(max_workers=len(reachable)) as pool:
            found = pool.map(lambda n: remote.estimate(shell, n, job.plans[n.name]), reachable)
            estimates = dict(zip((n.name for n in reachable), found, strict=True))
    needed = oms.estimate(job.settings, job.deployment) if job.want_oms else 0
    for node, estimate in estimates.items():
        if isinstance(estimate, str):
            job.summaries[node].problems.append(f"size estimate: {estimate}")
            needed += job.plans[node].cap  # unknown: room for one capped file
        else:
            needed += estimate[0] + MIB  # its files, and the commands' output
    target = job.target
    try:
        free = target.free_bytes()
    except (ViocliError, OSError) as error:
        reason = getattr(error, "message", None) or str(error)
        raise Refused(f"cannot tell the free space at {target.spec}: {reason}") from None
    if free < needed:
        raise Refused(
            f"{target.spec} has {free / MIB:.0f} MiB free; the bundle needs up to {needed / MIB:.0f} MiB",
            hint="free space there, write elsewhere (-o DIR or --nfs NFS_VOLUME), or collect less "
            "(--since 2h, --recent-logs, --node/--role)",
        )
    return needed


def _gather(job: _Job, writer: BundleWriter) -> None:
    """Every node's stream at once (``job.workers`` at a time), and the OMS's part alongside."""
    errors: list[BaseException] = []
    say = job.say

    def node_part(node: Node) -> None:
        say(f"{node.name}: collecting")
        assert job.shell is not None
        s = job.summaries[node.name]
        _Collection(writer, job.plans[node.name], s).run(job.shell, node)
        say(f"{node.name}: {s.status}, {s.files} files, {s.bytes / MIB:.1f} MiB in {s.seconds:.1f} s")

    def oms_part() -> None:
        try:
            _oms(job, writer)
        except BaseException as error:  # raised by the caller once the nodes are done
            errors.append(error)

    oms_thread = threading.Thread(target=oms_part, name="getlogs-oms", daemon=True) if job.want_oms else None
    if oms_thread:
        oms_thread.start()
    reachable = job.reachable
    if reachable:
        with ThreadPoolExecutor(max_workers=job.workers or len(reachable)) as pool:
            for future in [pool.submit(node_part, node) for node in reachable]:
                future.result()
    if oms_thread:
        oms_thread.join()
    if errors:
        raise errors[0]


def _oms(job: _Job, writer: BundleWriter) -> None:
    reader = StateStore.open_readonly(job.settings.db_path)
    try:
        items = [
            *oms.files(job.settings, job.deployment),
            *oms.state(reader, job.deployment.name),
            *oms.shown(job.deployment),
            *oms.vcenter(job.report, job.vcenter_error),
        ]
    finally:
        if reader:
            reader.close()
    for path, data, source in items:
        writer.add(path, data, node="oms", source=source)


def raise_if_failed(result: GetlogsResult) -> None:
    """Exit 1 when a node vCenter says is on (or could not say) gave nothing; the bundle stays."""
    if result.failed:
        names = ", ".join(f"{n.node} ({'; '.join(n.problems[:1]) or n.status})" for n in result.failed)
        raise OperationFailed(
            f"nothing could be collected from {names}; the bundle {result.location} holds the rest",
            hint="check the node answers SSH (sudo viocli deployment status), then run getlogs again for it: "
            "--node NAME",
        )
