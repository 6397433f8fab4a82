"""Collectors of the load balancers: HAProxy's backend servers and who holds the VIPs."""

from __future__ import annotations

import csv
import ipaddress
import re
from collections import defaultdict

from viocli.health import actions
from viocli.health.context import StatusContext
from viocli.health.result import Finding, Result, Status, conclude

HAPROXY = "VerifyHAProxyBackends"
VIPS = "VerifyVIPs"

ADMIN_SOCKET = "/run/haproxy/admin.sock"  # playbooks/roles/haproxy/templates/haproxy.cfg.j2
HAPROXY_COMMAND = f'echo "show stat" | socat stdio {ADMIN_SOCKET}'
ADDRESSES_COMMAND = "ip -o addr show"
STATS_PROXY = "stats"  # the statistics page: no backend servers to check
INET_RE = re.compile(r"\binet6?\s+([0-9A-Fa-f.:]+)/\d+")


# --- VerifyHAProxyBackends -----------------------------------------------------------------------
def parse_show_stat(text: str) -> list[dict[str, str]]:
    """HAProxy's ``show stat`` CSV (header ``# pxname,svname,...``) as one dict per row."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("#"):
        raise ValueError("no '# pxname,svname,...' header")
    header = lines[0].lstrip("# ").split(",")
    return [dict(zip(header, row, strict=False)) for row in csv.reader(lines[1:])]


def service_of(proxy: str) -> str:
    """The service behind a proxy: ``keystone_external`` -> ``keystone``."""
    for suffix in ("_internal", "_external"):
        if proxy.endswith(suffix):
            return proxy[: -len(suffix)]
    return proxy


def classify(status: str) -> tuple[Status, str]:
    """A server's HAProxy status as a verdict and a word for the message.

    UP (a backup server's UP too) and "no check" are fine; DOWN and MAINT fail; a server failing its
    checks while still UP ("UP 1/3"), draining (DRAIN) or refusing new load (NOLB) is a warning.
    """
    if status in ("UP", "no check"):
        return Status.SUCCESS, status
    word = status.split()[0] if status else "unknown"
    if word == "DOWN" or word.startswith("MAINT"):
        return Status.FAILURE, "DOWN" if word == "DOWN" else "MAINT"
    if word == "UP":
        return Status.WARNING, "failing its checks"
    return Status.WARNING, word


def verify_haproxy_backends(ctx: StatusContext) -> Result:
    """HAProxy runs on every load balancer and every backend server of every proxy is UP."""
    balancers = ctx.group("loadbalancer")
    ran, skipped = ctx.run_on(balancers, HAPROXY_COMMAND)
    _, unreachable = ctx.split_reachable(ctx.nodes)
    name = ctx.deployment
    findings, details = [], []
    # (server, state) -> service -> the load balancers that see it so; and the first check result
    trouble: dict[tuple[str, Status, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    checks: dict[tuple[str, Status, str], str] = {}
    checked: set[tuple[str, str]] = set()
    for lb, result in ran:
        try:
            if result.rc != 0:
                raise ValueError(result.reason())
            rows = parse_show_stat(result.stdout)
        except ValueError as error:
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{lb.name}: HAProxy does not answer on {ADMIN_SOCKET} ({error})",
                    (lb.name,),
                    actions.service("restart", "haproxy", lb.name, name),
                )
            )
            continue
        for row in rows:
            proxy, server, status = row.get("pxname", ""), row.get("svname", ""), row.get("status", "")
            if proxy == STATS_PROXY or server in ("FRONTEND", "BACKEND") or server in unreachable:
                continue
            checked.add((proxy, server))
            verdict, word = classify(status)
            if verdict is Status.SUCCESS:
                continue
            key = (server, verdict, word)
            trouble[key][service_of(proxy)].add(lb.name)
            check = " ".join(filter(None, (row.get("check_status", ""), row.get("last_chk", ""))))
            checks.setdefault(key, check)
            details.append(f"{lb.name}: {proxy}/{server} {status} {check}".rstrip())
    for key, services in sorted(trouble.items(), key=lambda item: (item[0][0], -item[0][1].rank)):
        server, verdict, word = key
        on = sorted({lb for lbs in services.values() for lb in lbs})
        findings.append(
            Finding(
                verdict,
                f"{server}: {', '.join(sorted(services))} {word} in HAProxy on {', '.join(on)}"
                + (f" ({checks[key]})" if checks[key] else ""),
                (server,),
                "; ".join(actions.service("restart", service, server, name) for service in sorted(services)),
            )
        )
    return conclude(
        HAPROXY,
        findings,
        ok=f"all {len(checked)} backend servers UP on {len(ran)} load balancers",
        details=details,
        skipped=skipped,
    )


# --- VerifyVIPs ----------------------------------------------------------------------------------
def parse_addresses(text: str) -> set[str]:
    """Every IP address in ``ip -o addr show`` output."""
    found = set()
    for match in INET_RE.finditer(text):
        try:
            found.add(str(ipaddress.ip_address(match.group(1))))
        except ValueError:
            continue
    return found


def verify_vips(ctx: StatusContext) -> Result:
    """Each VIP (internal and external) is held by exactly one load balancer."""
    balancers = ctx.group("loadbalancer")
    ran, skipped = ctx.run_on(balancers, ADDRESSES_COMMAND)
    name = ctx.deployment
    findings, details = [], []
    held: dict[str, set[str]] = {}
    for lb, result in ran:
        if result.rc != 0:
            findings.append(
                Finding(Status.WARNING, f"{lb.name}: cannot list its addresses ({result.reason()})", (lb.name,))
            )
            continue
        held[lb.name] = parse_addresses(result.stdout)
    vips = ctx.model.vips
    for label, vip in (("internal", str(vips.internal)), ("external", str(vips.external))):
        holders = sorted(lb for lb, addresses in held.items() if vip in addresses)
        details.append(f"{label} VIP {vip}: {', '.join(holders) or 'nobody'}")
        if not held:
            continue
        if not holders:
            candidates = sorted(held)
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"the {label} VIP {vip} is held by no load balancer (checked {', '.join(candidates)})",
                    tuple(candidates),
                    "; ".join(actions.service("restart", "keepalived", lb, name) for lb in candidates)
                    + " (keepalived takes the VIP only where HAProxy runs)",
                )
            )
        elif len(holders) > 1:
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"the {label} VIP {vip} is held by {' and '.join(holders)} at once (VRRP split brain)",
                    tuple(holders),
                    "check that VRRP passes between the load balancers' management and API addresses, then "
                    + actions.service("restart", "keepalived", holders[-1], name),
                )
            )
    return conclude(
        VIPS,
        findings,
        ok=f"internal VIP {vips.internal} and external VIP {vips.external} each held by one load balancer",
        details=details,
        skipped=skipped,
    )
