"""What ``deployment getlogs`` collects from one node: the logs, configuration and diagnostics of the
services its role runs (the service descriptors, playbooks/group_vars/all/services.yml), and what every
node has (the journal, the state of its units and processes, disks, memory, mounts, addresses, routes,
sockets, packages)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from viocli.inventory.topology import Node
from viocli.services import Service

# A file larger than this is cut: its last CAP bytes are kept (the newest lines), and the cut recorded.
DEFAULT_CAP = 50 * 1024 * 1024

# Every node, whatever its role.
COMMON_PATHS = (
    "/var/log/viocli",
    "/var/log/apt/history.log",
    "/var/log/dpkg.log",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/os-release",
    "/etc/systemd/system",
)
COMMON_COMMANDS = (
    ("units", "systemctl list-units --all --no-pager --plain"),
    ("failed-units", "systemctl --failed --no-pager --plain"),
    ("processes", "ps -eo pid,ppid,user,lstart,etime,stat,pcpu,rss,args --forest"),
    ("df", "df -hT; echo; df -i"),
    ("free", "free -m; echo; cat /proc/meminfo"),
    ("mounts", "cat /proc/mounts"),
    ("addresses", "ip -d address show"),
    ("routes", "ip route show table all; echo; ip -6 route show table all"),
    ("sockets", "ss -tulpn"),
    ("packages", "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\\n'"),
    ("system", "uname -a; uptime; cat /proc/loadavg; date -u"),
)
# Key material is never read off a node, even redacted: Keystone's fernet and credential keys,
# RabbitMQ's Erlang cookie, private keys.
EXCLUDED = ("*/fernet-keys/*", "*/credential-keys/*", "*/.erlang.cookie", "*.key", "*.keys", "*/private/*")


@dataclass(frozen=True)
class NodePlan:
    """What to collect from one node, and how."""

    node: str
    address: str
    paths: tuple[str, ...]  # files and directories (logs and configuration)
    commands: tuple[tuple[str, str], ...]  # (name, shell command): the output is collected
    units: tuple[str, ...]  # systemd units (or unit patterns) whose status is collected
    since: float | None  # only files written since this time (epoch seconds), and the journal since then
    recent_only: bool  # the current log files only, not the rotated ones
    cap: int = DEFAULT_CAP

    def command(self, name: str) -> str | None:
        """The shell command whose output is collected as ``name``."""
        return dict(self.commands).get(name)


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def node_services(node: Node, services: Sequence[Service]) -> list[Service]:
    """The services that run on ``node``: those of its groups (tiny's one node has them all), and those
    of every node."""
    return [s for s in services if s.group == "all" or s.group in node.groups]


def node_plan(
    node: Node,
    services: Sequence[Service],
    *,
    since: float | None = None,
    recent_only: bool = False,
    cap: int = DEFAULT_CAP,
) -> NodePlan:
    """The collection plan for ``node`` from the service descriptors."""
    mine = node_services(node, services)
    paths = [p for s in mine for p in (*s.logs, *s.config)]
    units = [u.name for s in mine for u in s.units]
    # A service whose units its role describes (nova-compute-<cluster>): its units by pattern.
    units += [f"{s.name.replace('_', '-')}*" for s in mine if not s.units]
    journal = "journalctl --no-pager -o short-iso-precise" + (f" --since @{int(since)}" if since else "")
    commands = [
        ("journal", journal),
        *COMMON_COMMANDS,
        *[diagnostic for s in mine for diagnostic in s.diagnostics],
    ]
    if units:
        listed = " ".join(shlex.quote(unit) for unit in _unique(units))
        # Its exit status says only that a unit is not active (cinder-volume on a standby controller):
        # the output says which, so it is not a collection failure.
        commands.append(("service-status", f"systemctl status --no-pager --lines=50 --all {listed}; exit 0"))
    return NodePlan(
        node=node.name,
        address=str(node.mgmt_ip),
        paths=_unique([*COMMON_PATHS, *paths]),
        commands=tuple(commands),
        units=_unique(units),
        since=since,
        recent_only=recent_only,
        cap=cap,
    )
