"""Collectors of the database nodes: the MariaDB Galera cluster and the RabbitMQ cluster."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from viocli.health import actions
from viocli.health.context import StatusContext
from viocli.health.result import Finding, Result, Status, conclude

GALERA = "VerifyGaleraCluster"
RABBITMQ = "VerifyRabbitMQCluster"

GALERA_COMMAND = (
    'mysql -N -B -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('
    "'wsrep_cluster_size','wsrep_cluster_status','wsrep_local_state_comment','wsrep_cluster_state_uuid',"
    "'wsrep_ready')\""
)
RABBITMQ_COMMAND = "rabbitmqctl --quiet cluster_status --formatter json"
RABBITMQ_TIMEOUT = 8.0  # rabbitmqctl starts an Erlang VM first


# --- VerifyGaleraCluster -------------------------------------------------------------------------
def parse_status(text: str) -> dict[str, str]:
    """``mysql -N -B`` output of SHOW STATUS (name TAB value per line) as {name: value}."""
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            values[name.strip().lower()] = value.strip()
    return values


def verify_galera_cluster(ctx: StatusContext) -> Result:
    """Every database node is Synced in one Primary component of the expected size."""
    members = ctx.group("database")
    ran, skipped = ctx.run_on(members, GALERA_COMMAND)
    name = ctx.deployment
    states = {node.name: parse_status(result.stdout) if result.rc == 0 else None for node, result in ran}
    errors = {node.name: result.reason() for node, result in ran if result.rc != 0}
    details = [
        f"{node}: " + (", ".join(f"{k}={v}" for k, v in sorted(s.items())) if s else f"error: {errors[node]}")
        for node, s in states.items()
    ]
    primary = {node: s for node, s in states.items() if s and s.get("wsrep_cluster_status") == "Primary"}
    if not primary:
        down = sorted(states)
        return conclude(
            GALERA,
            [
                Finding(
                    Status.FAILURE,
                    "no database node is in a Primary component (the cluster is down: "
                    + "; ".join(f"{n}: {errors.get(n) or (states[n] or {}).get('wsrep_cluster_status')}" for n in down)
                    + ")",
                    tuple(down),
                    f"{actions.start_deployment(name)} (restarts Galera from the most advanced node)",
                )
            ],
            ok="",
            details=details,
            skipped=skipped,
        )
    cluster_uuid = Counter(s.get("wsrep_cluster_state_uuid") for s in primary.values()).most_common(1)[0][0]
    findings = []
    for node, state in states.items():
        restart = actions.service("restart", "mariadb", node, name)
        if state is None:
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{node}: mysqld does not answer ({errors[node]})",
                    (node,),
                    actions.service("start", "mariadb", node, name),
                )
            )
        elif state.get("wsrep_cluster_status") != "Primary":
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{node}: not in the Primary component ({state.get('wsrep_cluster_status', 'no wsrep status')})",
                    (node,),
                    restart,
                )
            )
        elif state.get("wsrep_cluster_state_uuid") != cluster_uuid:
            findings.append(
                Finding(Status.FAILURE, f"{node}: in another cluster than the other database nodes", (node,), restart)
            )
        elif state.get("wsrep_local_state_comment") != "Synced":
            local = state.get("wsrep_local_state_comment", "unknown")
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{node}: {local}, not Synced (a state transfer runs or is stuck)",
                    (node,),
                    f"wait for the state transfer to finish; if {node} stays {local}: {restart}",
                )
            )
        elif state.get("wsrep_ready") != "ON":
            findings.append(Finding(Status.FAILURE, f"{node}: wsrep_ready is not ON", (node,), restart))
    healthy = [n for n in primary if not any(n in f.nodes for f in findings)]
    sizes = {n: _int(primary[n].get("wsrep_cluster_size")) for n in healthy}
    for node, size in sizes.items():
        if size is None or not len(healthy) <= size <= len(members):
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"{node}: the cluster has {size} members, the inventory {len(members)} database nodes",
                    (node,),
                    "compare wsrep_incoming_addresses on the database nodes with the inventory",
                )
            )
    size = max((s for s in sizes.values() if s is not None), default=0)
    findings += _unconfirmed_members(skipped, "Galera")
    return conclude(
        GALERA,
        findings,
        ok=f"{len(healthy)} database nodes Synced in one Primary component (cluster size {size})",
        details=details,
        skipped=skipped,
    )


def _unconfirmed_members(skipped: Sequence[str], cluster: str) -> list[Finding]:
    """A member this run cannot reach is not a member anyone can vouch for: the cluster is degraded."""
    return [
        Finding(
            Status.FAILURE,
            f"{node}: unreachable, so its {cluster} membership cannot be confirmed (see VerifyNodeReachable)",
            (node,),
            "bring the node back on the network (VerifyNodeReachable says what fails), then run status again",
        )
        for node in skipped
    ]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# --- VerifyRabbitMQCluster -----------------------------------------------------------------------
def parse_cluster_status(text: str) -> dict[str, Any]:
    """``rabbitmqctl cluster_status --formatter json`` as a dict (any banner before the JSON skipped)."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output")
    data = json.loads(text[start:])
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object")
    return data


def _short(member: str) -> str:
    """``rabbit@database01`` -> ``database01``."""
    return member.split("@", 1)[-1]


def verify_rabbitmq_cluster(ctx: StatusContext) -> Result:
    """Every database node runs RabbitMQ in one cluster: all members running, no partition, no alarm.

    The view shared by most nodes (the members each sees running) is the cluster; a node outside it
    is named as cut off, whatever it reports itself.
    """
    members = ctx.group("database")
    ran, skipped = ctx.run_on(members, RABBITMQ_COMMAND, timeout=RABBITMQ_TIMEOUT)
    views: dict[str, dict[str, Any]] = {}
    bad: dict[str, list[str]] = {}
    details = []
    for node, result in ran:
        try:
            if result.rc != 0:
                raise ValueError(result.reason())
            views[node.name] = parse_cluster_status(result.stdout)
        except ValueError as error:
            bad.setdefault(node.name, []).append(f"RabbitMQ does not answer ({error})")
            details.append(f"{node.name}: error: {error}")
    running = {node: frozenset(_short(m) for m in view.get("running_nodes") or []) for node, view in views.items()}
    counts = Counter(running.values())
    cluster = max(counts, key=lambda seen: (counts[seen], len(seen)), default=frozenset())
    in_cluster = [node for node, seen in running.items() if seen == cluster]
    for node, view in views.items():
        details.append(
            f"{node}: running {', '.join(sorted(running[node])) or 'none'}; "
            f"partitions {view.get('partitions') or 'none'}; alarms {len(view.get('alarms') or [])}"
        )
    disk = {_short(m) for node in in_cluster for m in views[node].get("disk_nodes") or []}
    for node in (n.name for n, _ in ran):
        others = ", ".join(sorted(cluster - {node})) or "the other nodes"
        if node not in cluster:
            bad.setdefault(node, []).append(f"not running in the cluster of {others}")
        elif disk and node not in disk:
            bad.setdefault(node, []).append("not a member of the cluster")
    for reporter in in_cluster:  # a partition as the cluster sees it: name the side that is cut off
        partitions = views[reporter].get("partitions") or {}
        for member, peers in partitions.items() if isinstance(partitions, dict) else []:
            for peer in (_short(p) for p in peers or []):
                for node in [peer] if peer not in cluster else [peer, _short(member)]:
                    bad.setdefault(node, []).append(f"network partition between {_short(member)} and {peer}")
    for reporter, view in views.items():
        for alarm in view.get("alarms") or []:
            where = _short(str(alarm.get("node", reporter))) if isinstance(alarm, dict) else reporter
            resource = alarm.get("resource", "resource") if isinstance(alarm, dict) else str(alarm)
            bad.setdefault(where, []).append(f"{resource} alarm (publishers are blocked)")
    findings = [
        Finding(
            Status.FAILURE,
            f"{node}: {'; '.join(dict.fromkeys(problems))}",
            (node,),
            actions.service("restart", "rabbitmq", node, ctx.deployment),
        )
        for node, problems in sorted(bad.items())
    ]
    findings += _unconfirmed_members(skipped, "RabbitMQ")
    return conclude(
        RABBITMQ,
        findings,
        ok=f"{len(cluster)} RabbitMQ nodes running in one cluster, no partition, no alarm",
        details=details,
        skipped=skipped,
    )
