"""Collectors that look at every node: SSH reachability, time synchronization, disk space."""

from __future__ import annotations

from viocli.health import actions
from viocli.health.context import StatusContext
from viocli.health.result import Finding, Result, Status, conclude
from viocli.inventory.topology import Node

REACHABLE = "VerifyNodeReachable"
TIME = "VerifyTimeSynchronization"
DISK = "VerifyDiskSpace"

CHRONY_COMMAND = "chronyc -n tracking"
MAX_CLOCK_OFFSET = 0.5  # seconds off NTP time before it is worth a warning
MYSQL_DATADIR = "/var/lib/mysql"
DISK_WARNING_FREE = 15.0  # percent free under which a file system is a WARNING
DISK_FAILURE_FREE = 5.0  # and a FAILURE


# --- VerifyNodeReachable -------------------------------------------------------------------------
def _unreachable_action(ctx: StatusContext, node: str, address: str, detail: str) -> str:
    if "Host key verification failed" in detail or "REMOTE HOST IDENTIFICATION HAS CHANGED" in detail:
        return (
            f"{node}'s SSH host key is not the one vCenter published: if {node} was rebuilt, "
            f"{actions.recover(node, ctx.deployment)}; otherwise find out what answers on {address}"
        )
    if "Permission denied" in detail:
        return (
            f"put the OMS key back in root's authorized_keys on {node} (VM console), then "
            f"{actions.configure(ctx.deployment, 'common_ssh')}"
        )
    return (
        f"check {node}'s VM in vCenter (power, console, network; see VerifyVMPowerState); "
        f"{actions.start_deployment(ctx.deployment)} powers on stopped VMs"
    )


def verify_node_reachable(ctx: StatusContext) -> Result:
    """Every node answers SSH with the OMS key and the host key vCenter published."""
    reach = ctx.reachability()
    findings = []
    details = []
    for node in ctx.nodes:
        state = reach[node.name]
        details.append(f"{node.name} ({node.mgmt_ip}): {state.detail}")
        if not state.ok:
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{node.name} ({node.mgmt_ip}) does not answer SSH: {state.detail}",
                    (node.name,),
                    _unreachable_action(ctx, node.name, str(node.mgmt_ip), state.detail),
                )
            )
    ok = f"all {len(ctx.nodes)} nodes answer SSH"
    if not all(state.key_checked for state in reach.values()):
        ok += " (sshd answers; run as root to check the logins and host keys)"
    return conclude(REACHABLE, findings, ok=ok, details=details)


# --- VerifyTimeSynchronization -------------------------------------------------------------------
def parse_tracking(text: str) -> dict[str, str]:
    """``chronyc tracking`` output as {field: value} (``Leap status`` -> ``Normal``)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def clock_offset(system_time: str) -> float | None:
    """Seconds the clock is ahead of NTP time (negative: behind), from ``System time``."""
    parts = system_time.split()
    try:
        seconds = float(parts[0])
    except (IndexError, ValueError):
        return None
    return -seconds if "slow" in parts else seconds


def verify_time_synchronization(ctx: StatusContext) -> Result:
    """chrony runs on every node, is synchronised, and the clock is close to NTP time. WARNING at worst."""
    ran, skipped = ctx.run_on(ctx.nodes, CHRONY_COMMAND)
    servers = ", ".join(ctx.model.openstack.ntp_servers) or "the NTP servers"
    fix_chrony = actions.configure(ctx.deployment, "common_chrony")
    findings, details = [], []
    for node, result in ran:
        fields = parse_tracking(result.stdout) if result.rc == 0 else {}
        leap = fields.get("Leap status")
        offset = clock_offset(fields.get("System time", ""))
        if result.rc == 127 or "not found" in result.stderr:
            finding = Finding(Status.WARNING, f"{node.name}: chrony is not installed", (node.name,), fix_chrony)
        elif result.rc != 0:
            finding = Finding(
                Status.WARNING, f"{node.name}: chronyd does not answer ({result.reason()})", (node.name,), fix_chrony
            )
        elif leap != "Normal":
            finding = Finding(
                Status.WARNING,
                f"{node.name}: clock not synchronised (leap status: {leap or 'unknown'})",
                (node.name,),
                f"check that {node.name} reaches {servers} on UDP port 123 (openstack.ntp_servers)",
            )
        elif offset is not None and abs(offset) > MAX_CLOCK_OFFSET:
            finding = Finding(
                Status.WARNING,
                f"{node.name}: clock {abs(offset):.3f} s {'ahead of' if offset > 0 else 'behind'} NTP time",
                (node.name,),
                f"chrony corrects the clock slowly; if it does not, check {servers} from {node.name}",
            )
        else:
            finding = Finding(Status.SUCCESS, "")
            details.append(
                f"{node.name}: synchronised to {fields.get('Reference ID', '?')}, "
                f"offset {offset if offset is not None else 0:+.6f} s"
            )
        if finding.status is not Status.SUCCESS:
            details.append(finding.text)
        findings.append(finding)
    return conclude(
        TIME, findings, ok=f"{len(ran)} node clocks synchronised by chrony", details=details, skipped=skipped
    )


# --- VerifyDiskSpace -----------------------------------------------------------------------------
def parse_df(text: str) -> list[tuple[str, int, int]]:
    """``df -P`` output as (mount point, used KiB, available KiB), one per file system."""
    found: dict[str, tuple[str, int, int]] = {}
    for line in text.splitlines()[1:]:
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        try:
            used, available = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        found.setdefault(parts[5], (parts[5], used, available))
    return list(found.values())


def df_command(node: Node) -> str:
    """``df -P /``, plus the MariaDB data directory on database nodes (a mount of its own or not)."""
    return f"df -P / {MYSQL_DATADIR}" if "database" in node.groups else "df -P /"


def verify_disk_space(ctx: StatusContext) -> Result:
    """Every node's root file system (and MariaDB's on database nodes) has space left."""
    ran, skipped = ctx.run_on(ctx.nodes, df_command)
    findings, details = [], []
    for node, result in ran:
        filesystems = parse_df(result.stdout)
        if not filesystems:
            findings.append(
                Finding(Status.WARNING, f"{node.name}: cannot read disk usage ({result.reason()})", (node.name,))
            )
            continue
        for mount, used, available in filesystems:
            total = used + available
            free = 100.0 * available / total if total else 100.0
            details.append(f"{node.name}:{mount} {free:.0f}% free ({available // 1024} MiB)")
            if free < DISK_WARNING_FREE:
                status = Status.FAILURE if free < DISK_FAILURE_FREE else Status.WARNING
                findings.append(
                    Finding(
                        status,
                        f"{node.name}: {mount} has {free:.1f}% free ({available // 1024} MiB)",
                        (node.name,),
                        f"free space in {mount} on {node.name} (old logs in /var/log, core files) "
                        "or grow its disk in vCenter",
                    )
                )
    return conclude(
        DISK,
        findings,
        ok=f"every file system has at least {DISK_WARNING_FREE:.0f}% free on {len(ran)} nodes",
        details=details,
        skipped=skipped,
    )
