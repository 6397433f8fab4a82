"""VerifyMemcached: memcached answers ``stats`` on every controller, where the services reach it."""

from __future__ import annotations

import shlex

from viocli.health import actions
from viocli.health.context import StatusContext
from viocli.health.result import Finding, Result, Status, conclude
from viocli.inventory.topology import Node

MEMCACHED = "VerifyMemcached"

# Run by the node's python3 (Ansible needs it on every node): connect to memcached's address as the
# services do, ask "stats", print the answer up to END.
PROBE = """\
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)
s.settimeout(3)
s.sendall(b"stats\\r\\n")
data = b""
while not data.endswith(b"END\\r\\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode("ascii", "replace"))
"""
BUSY = 0.9  # share of max_connections in use worth a warning


def probe_command(node: Node, port: int) -> str:
    """The probe of ``node``'s memcached: its management address (memcached.conf ``-l``) and port."""
    return f"python3 -c {shlex.quote(PROBE)} {node.mgmt_ip} {port}"


def parse_stats(text: str) -> dict[str, str]:
    """memcached's ``STAT name value`` lines as {name: value}."""
    stats = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


def verify_memcached(ctx: StatusContext) -> Result:
    """memcached runs on every controller and answers on its management address."""
    port = int(ctx.variables["memcached_port"])
    ran, skipped = ctx.run_on(ctx.group("controller"), lambda node: probe_command(node, port))
    findings, details = [], []
    for node, result in ran:
        stats = parse_stats(result.stdout) if result.rc == 0 else {}
        restart = actions.service("restart", "memcached", node.name, ctx.deployment)
        if "pid" not in stats:
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{node.name}: memcached does not answer on {node.mgmt_ip}:{port} ({result.reason()})",
                    (node.name,),
                    restart,
                )
            )
            continue
        current, limit = int(stats.get("curr_connections", 0)), int(stats.get("max_connections", 0))
        details.append(f"{node.name}: up {stats.get('uptime', '?')} s, {current}/{limit or '?'} connections")
        if limit and current >= BUSY * limit:
            findings.append(
                Finding(
                    Status.WARNING,
                    f"{node.name}: memcached has {current} of its {limit} connections in use",
                    (node.name,),
                    "raise memcached_max_connections in custom.yml, then "
                    + actions.configure(ctx.deployment, "memcached_config"),
                )
            )
    return conclude(
        MEMCACHED,
        findings,
        ok=f"memcached answers on {len(ran)} controllers (port {port})",
        details=details,
        skipped=skipped,
    )
