"""Filters that read a Galera member's state and choose how the cluster starts (the mariadb_galera role).

``galera_bootstrap_choice`` is the decision of ``viocli deployment start`` (seed 003 section 9.2.2):

1. a member runs in a Primary component: never bootstrap over it (as OSA refuses to); the members
   that run outside it are stopped, then every other member joins, one at a time;
2. no member runs and one is marked ``safe_to_bootstrap: 1`` (it stopped last, cleanly): bootstrap
   from it, then the others join one at a time;
3. no member runs and none is safe (a crash): recover each member's last committed position
   (``galera_recovery``, i.e. ``mariadbd --wsrep-recover``), refuse if they report different cluster
   UUIDs, and bootstrap from the highest seqno (``-1``, unknown, is the lowest), a tie going to the
   first database node;

and, before 2 or 3, members that run outside any Primary component are stopped first (their state
is only on disk once they stop). Every answer carries a ``reason`` for the operator, and every
refusal says what was found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
UNIT_SETTLED = ("active", "inactive", "failed")
POSITION_RE = re.compile(
    r"(?:Recovered position:?|--wsrep[_-]start[_-]position=)\s*"
    r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}):(-?\d+)"
)
ERROR_RE = re.compile(r"\[ERROR\]|\berror\b|failed|fatal|abort", re.I)
LOG_PREFIX_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\s+\d+)?\s+")
HINT = (
    "name the node to bootstrap from with `mariadb_bootstrap_node: <node>` in custom.yml (and remove it once "
    "Galera runs)"
)


def _text(value: Any) -> str:
    """Command output as one text: a string, or a list of lines (Ansible's stdout_lines)."""
    if isinstance(value, list | tuple):
        return "\n".join(str(line) for line in value)
    return str(value or "")


def _uuid(value: Any) -> str | None:
    text = str(value or "").strip().lower()
    return None if not text or text == ZERO_UUID else text


def _int(value: Any, default: int = -1) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def galera_grastate(text: str | None) -> dict[str, Any]:
    """``/var/lib/mysql/grastate.dat`` -> ``{uuid, seqno, safe_to_bootstrap}`` (no file: no uuid, -1, false)."""
    state: dict[str, Any] = {"uuid": None, "seqno": -1, "safe_to_bootstrap": False}
    for line in str(text or "").splitlines():
        key, sep, value = line.partition(":")
        if not sep or line.lstrip().startswith("#"):
            continue
        key = key.strip()
        if key == "uuid":
            state["uuid"] = _uuid(value)
        elif key == "seqno":
            state["seqno"] = _int(value)
        elif key == "safe_to_bootstrap":
            state["safe_to_bootstrap"] = value.strip() == "1"
    return state


def galera_wsrep_status(text: str | None) -> dict[str, Any]:
    """``mysql -N -B -e "SHOW GLOBAL STATUS WHERE Variable_name IN (...)"`` -> its wsrep values.

    Keys: ``cluster_status`` (Primary, non-Primary, Disconnected), ``local_state`` (Synced, Joining,
    Donor/Desynced...), ``cluster_size`` (int) and ``state_uuid``.
    """
    values: dict[str, str] = {}
    for line in str(text or "").splitlines():
        name, _, value = line.partition("\t")
        values[name.strip().lower()] = value.strip()
    return {
        "cluster_status": values.get("wsrep_cluster_status", ""),
        "local_state": values.get("wsrep_local_state_comment", ""),
        "cluster_size": _int(values.get("wsrep_cluster_size"), 0),
        "state_uuid": _uuid(values.get("wsrep_cluster_state_uuid")),
    }


def galera_recovered_position(text: str | list[str] | None) -> dict[str, Any] | None:
    """The last ``Recovered position: <uuid>:<seqno>`` (or ``--wsrep_start_position=<uuid>:<seqno>``) in
    the whole text, as ``{uuid, seqno}``; None when there is none.

    The last one of the whole log, never of a tail: a long log holds earlier positions (kolla LP#1821173).
    """
    matches = POSITION_RE.findall(_text(text))
    if not matches:
        return None
    uuid, seqno = matches[-1]
    return {"uuid": _uuid(uuid), "seqno": int(seqno)}


def galera_first_error(text: str | list[str] | None) -> str:
    """The first line of a MariaDB log or command output that reads as an error (an ``[ERROR]`` line
    first, from that mark on), without its timestamp."""
    lines = [line.strip() for line in _text(text).splitlines() if line.strip()]
    marked = [line[line.index("[ERROR]") :].rstrip("'") for line in lines if "[ERROR]" in line]
    errors = [line for line in lines if ERROR_RE.search(line)]
    line = (marked or errors or lines or [""])[0]
    return " ".join(LOG_PREFIX_RE.sub("", line).split())[:300]


def _node(host: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """One member's state as gathered by the role (tasks/gather_node.yml), normalised."""
    unit = str(raw.get("unit") or "unknown")
    running = unit == "active"
    sql_ok = running and _int(raw.get("sql_rc"), 1) == 0
    wsrep = galera_wsrep_status(raw.get("sql")) if sql_ok else {}
    grastate = galera_grastate(raw.get("grastate"))
    node: dict[str, Any] = {
        "host": host,
        "unit": unit,
        "running": running,
        "answers": sql_ok,
        "sql_error": galera_first_error(raw.get("sql_error")) if running and not sql_ok else "",
        "primary": sql_ok and wsrep.get("cluster_status") == "Primary",
        "wsrep": wsrep,
        "grastate": grastate,
        "recovered": None,
        "recovery_error": "",
    }
    if raw.get("recovery") is not None or raw.get("recovery_rc") is not None:
        position = galera_recovered_position(raw.get("recovery"))
        if _int(raw.get("recovery_rc"), 1) == 0 and position is not None:
            node["recovered"] = position
        else:
            node["recovery_error"] = galera_first_error(raw.get("recovery")) or "no recovered position in its output"
    return node


def _describe(node: dict[str, Any]) -> str:
    host, grastate = node["host"], node["grastate"]
    if node["running"] and not node["answers"]:
        return f"{host}: runs but does not answer SQL ({node['sql_error']})"
    if node["running"]:
        w = node["wsrep"]
        status, state = w["cluster_status"] or "unknown", w["local_state"] or "unknown"
        return f"{host}: runs, {status}, {state}, size {w['cluster_size']}"
    text = (
        f"{host}: {node['unit']}, grastate seqno {grastate['seqno']}, "
        f"safe_to_bootstrap {1 if grastate['safe_to_bootstrap'] else 0}"
    )
    if node["recovered"] is not None:
        text += f", recovered seqno {node['recovered']['seqno']}"
    elif node["recovery_error"]:
        text += f", recovery failed: {node['recovery_error']}"
    return text


def _names(hosts: Iterable[str]) -> str:
    hosts = list(hosts)
    return hosts[0] if len(hosts) == 1 else ", ".join(hosts[:-1]) + " and " + hosts[-1]


def _check_one_history(nodes: list[dict[str, Any]], uuid_of) -> None:
    """Refuse members whose cluster UUIDs differ (an empty data directory has none and is ignored)."""
    by_uuid: dict[str, list[str]] = {}
    for node in nodes:
        uuid = uuid_of(node)
        if uuid:
            by_uuid.setdefault(uuid, []).append(node["host"])
    if len(by_uuid) > 1:
        found = "; ".join(
            f"{_names(hosts)} {'has' if len(hosts) == 1 else 'have'} {uuid}" for uuid, hosts in by_uuid.items()
        )
        raise AnsibleFilterError(
            f"the database members report different cluster UUIDs ({found}): they are not one cluster's "
            "history, and bootstrapping from either would throw the other's data away; refusing to "
            f"bootstrap: find the member whose data to keep, and {HINT}"
        )


def galera_bootstrap_choice(
    states: Mapping[str, Mapping[str, Any]],
    order: Iterable[str],
    scope: Iterable[str] | None = None,
    forced: str | None = None,
) -> dict[str, Any]:
    """How to start the Galera cluster, from each member's gathered state.

    ``states``: inventory host -> what tasks/gather_node.yml found (``unit``: its ActiveState; ``sql_rc``,
    ``sql``, ``sql_error``: the wsrep status query; ``grastate``: grastate.dat; after a recovery,
    ``recovery_rc`` and ``recovery``: galera_recovery's output). A host of ``order`` without a state
    did not answer. ``order``: groups['database'] (its first node wins ties). ``scope``: the hosts this
    run may act on (default: all). ``forced``: bootstrap from this node when no Primary component runs.

    Returns ``{action, node, reason, stop, join, members, found}``; ``action`` is ``join`` (a Primary
    component runs: ``node`` is a member of it), ``stop`` (stop the non-Primary members ``stop``, then
    gather and choose again), ``recover`` (run the wsrep recovery on every member, then choose again)
    or ``bootstrap`` (from ``node``). ``join``: the members to start after that, one at a time;
    ``members``: those that must be Synced at the end. Raises AnsibleFilterError when starting would
    risk data.
    """
    order = [str(host) for host in order]
    scope = order if scope is None else [str(host) for host in scope]
    nodes = {host: _node(host, states[host]) for host in order if states.get(host) is not None}
    found = [_describe(nodes[host]) if host in nodes else f"{host}: did not answer" for host in order]
    silent = [host for host in order if host not in nodes]
    result: dict[str, Any] = {"node": None, "stop": [], "join": [], "found": found}

    mute = [n for n in nodes.values() if n["running"] and not n["answers"]]
    if mute:
        n = mute[0]
        raise AnsibleFilterError(
            f"mariadb runs on {n['host']} but does not answer SQL over its socket ({n['sql_error']}): its Galera "
            "state is unknown, so the cluster cannot be started safely; see /var/log/mysql/error.log there"
        )

    primary = [host for host in order if host in nodes and nodes[host]["primary"]]
    outside = [host for host in order if host in nodes and nodes[host]["running"] and not nodes[host]["primary"]]
    if primary:
        sizes = {host: nodes[host]["wsrep"]["cluster_size"] for host in primary}
        if len(primary) > min(sizes.values()):
            seen = ", ".join(f"{host} (size {size})" for host, size in sizes.items())
            raise AnsibleFilterError(
                f"{seen} run in separate Primary components (a split brain): refusing to choose one; stop the "
                "members whose writes may be dropped, then run `viocli deployment start` again"
            )
        size = max(sizes.values())
        join = [host for host in order if host in nodes and host in scope and host not in primary]
        stop = [host for host in outside if host in scope]
        reason = f"{_names(primary)} {'runs' if len(primary) == 1 else 'run'} in a Primary component (size {size}): "
        reason += "not bootstrapping over it; "
        if stop:
            reason += f"stopping {_names(stop)} (outside it) first; "
        reason += f"joining {_names(join)} one at a time" if join else "every member is in it"
        if forced:
            reason += f" (mariadb_bootstrap_node {forced} not used: a Primary component runs)"
        members = [host for host in order if host in scope or host in primary]
        return {**result, "action": "join", "node": primary[0], "reason": reason, "stop": stop, "join": join,
                "members": members}  # fmt: skip

    # No Primary component: the cluster must be bootstrapped, which concerns every member.
    if [host for host in order if host not in scope]:
        raise AnsibleFilterError(
            "no database member runs in a Primary component: Galera must be bootstrapped, which takes every "
            "database node; run `viocli deployment start` (or `viocli services start` without --node/--role)"
        )
    if outside:
        return {**result, "action": "stop", "stop": outside, "members": order,
                "reason": f"no member runs in a Primary component: stopping {_names(outside)} "
                          "(non-Primary) before choosing where to bootstrap from"}  # fmt: skip
    unsettled = [n for n in nodes.values() if n["unit"] not in UNIT_SETTLED]
    if unsettled:
        n = unsettled[0]
        raise AnsibleFilterError(
            f"mariadb on {n['host']} is still {n['unit']} and no member runs in a Primary component: wait until "
            "it settles (journalctl -u mariadb there), then run `viocli deployment start` again"
        )

    def bootstrap(node: str, reason: str) -> dict[str, Any]:
        join = [host for host in order if host != node and host in nodes]
        return {**result, "action": "bootstrap", "node": node, "reason": reason, "join": join, "members": order}

    if forced:
        if forced not in nodes:
            where = "did not answer" if forced in order else "is not a database node"
            raise AnsibleFilterError(f"mariadb_bootstrap_node {forced} {where}: cannot bootstrap from it")
        return bootstrap(forced, f"bootstrapping from {forced} (named by mariadb_bootstrap_node)")

    ranked = list(nodes.values())
    safe = [n for n in ranked if n["grastate"]["safe_to_bootstrap"]]
    if safe:
        _check_one_history(ranked, lambda n: n["grastate"]["uuid"])
        best = max(safe, key=lambda n: (n["grastate"]["seqno"], -order.index(n["host"])))
        reason = (
            f"bootstrapping from {best['host']} (safe_to_bootstrap: 1: it stopped last, cleanly; "
            f"seqno {best['grastate']['seqno']})"
        )
        others = [n["host"] for n in safe if n is not best]
        if others:
            reason += f"; {_names(others)} also marked safe, with a lower seqno or later in the inventory"
        return bootstrap(best["host"], reason)

    # A crash: every member's last committed position decides.
    if silent:
        raise AnsibleFilterError(
            f"no member runs and none is marked safe_to_bootstrap (they did not stop cleanly), and {_names(silent)} "
            f"did not answer: the most advanced member cannot be known without its position; bring it back and run "
            f"`viocli deployment start` again, or {HINT}"
        )
    if any(n["recovered"] is None and not n["recovery_error"] for n in ranked):
        return {**result, "action": "recover", "members": order,
                "reason": "no member runs and none is marked safe_to_bootstrap (they did not stop cleanly): "
                          "recovering each member's last committed position"}  # fmt: skip
    failed = [n for n in ranked if n["recovery_error"]]
    if failed:
        n = failed[0]
        raise AnsibleFilterError(
            f"the wsrep position recovery (galera_recovery) failed on {n['host']}: {n['recovery_error']}; without "
            "its position the most advanced member is unknown: fix it and run `viocli deployment start` again, "
            f"or {HINT}"
        )
    _check_one_history(ranked, lambda n: n["recovered"]["uuid"] or n["grastate"]["uuid"])

    def rank(n: dict[str, Any]) -> tuple[bool, int, int]:
        # Data first (an empty data directory has no cluster UUID), then the seqno (-1, unknown, lowest),
        # then the inventory order.
        return (bool(n["recovered"]["uuid"] or n["grastate"]["uuid"]), n["recovered"]["seqno"], -order.index(n["host"]))

    best = max(ranked, key=rank)
    seqno = best["recovered"]["seqno"]
    tied = [n["host"] for n in ranked if n is not best and rank(n)[:2] == rank(best)[:2]]
    if seqno < 0:
        reason = f"bootstrapping from {best['host']} (every member reports seqno -1, unknown: the first database node)"
    elif tied:
        reason = f"bootstrapping from {best['host']} (highest seqno {seqno}, tied with {_names(tied)}: the first in the inventory)"  # noqa: E501
    else:
        reason = f"bootstrapping from {best['host']} (highest seqno {seqno})"
    return bootstrap(best["host"], reason)


def galera_restart_plan(
    states: Mapping[str, Mapping[str, Any]], order: Iterable[str], scope: Iterable[str] | None = None
) -> dict[str, Any]:
    """The order of a rolling restart (``services restart``), from each member's gathered state.

    Only over a running Primary component (without one a restart is an outage: ``services start``
    brings Galera back). The members of ``scope`` outside the component come first (restarting or
    starting them makes them join it), then those in it, in inventory order, so that the component
    only ever loses one member at a time. Returns ``{order, sizes, reason, found}``; ``sizes``: the
    cluster size to wait for after each member's restart.
    """
    order = [str(host) for host in order]
    scope = order if scope is None else [str(host) for host in scope]
    nodes = {host: _node(host, states[host]) for host in order if states.get(host) is not None}
    found = [_describe(nodes[host]) if host in nodes else f"{host}: did not answer" for host in order]
    mute = [n for n in nodes.values() if n["running"] and not n["answers"]]
    if mute:
        n = mute[0]
        raise AnsibleFilterError(
            f"mariadb runs on {n['host']} but does not answer SQL over its socket ({n['sql_error']}): refusing a "
            "rolling restart of a cluster whose state is unknown; see /var/log/mysql/error.log there"
        )
    primary = [host for host in order if host in nodes and nodes[host]["primary"]]
    if not primary:
        raise AnsibleFilterError(
            f"no database member runs in a Primary component ({'; '.join(found)}): a rolling restart cannot keep "
            "the database up; run `viocli services start --service mariadb`, which brings Galera back"
        )
    sizes = {host: nodes[host]["wsrep"]["cluster_size"] for host in primary}
    if len(primary) > min(sizes.values()):
        seen = ", ".join(f"{host} (size {size})" for host, size in sizes.items())
        raise AnsibleFilterError(f"{seen} run in separate Primary components (a split brain): refusing to restart")
    first = [host for host in order if host in scope and host in nodes and host not in primary]
    then = [host for host in order if host in scope and host in primary]
    want = {host: len(primary) + index + 1 for index, host in enumerate(first)}
    want.update({host: len(primary) + len(first) for host in then})
    reason = f"rolling restart over the Primary component of {_names(primary)}: "
    if first:
        reason += f"{_names(first)} (outside it) first, then "
    reason += f"{_names(then)}, one at a time, each Synced before the next" if then else "nothing else to restart"
    silent = [host for host in scope if host not in nodes]
    if silent:
        reason += f"; {_names(silent)} did not answer and {'is' if len(silent) == 1 else 'are'} left out"
    return {"order": first + then, "sizes": want, "reason": reason, "found": found}


def _or_refusal(choose, *args: Any) -> dict[str, Any]:
    try:
        return choose(*args)
    except AnsibleFilterError as error:
        return {"action": "refuse", "reason": str(error)}


def galera_start_plan(
    states: Mapping[str, Mapping[str, Any]],
    order: Iterable[str],
    scope: Iterable[str] | None = None,
    forced: str | None = None,
) -> dict[str, Any]:
    """galera_bootstrap_choice, with a refusal as ``{action: refuse, reason}`` (the role fails with it
    as its own message) instead of an exception (which Ansible wraps in its own words)."""
    return _or_refusal(galera_bootstrap_choice, states, order, scope, forced)


def galera_restart_order(
    states: Mapping[str, Mapping[str, Any]], order: Iterable[str], scope: Iterable[str] | None = None
) -> dict[str, Any]:
    """galera_restart_plan, with a refusal as ``{action: refuse, reason}`` instead of an exception."""
    return {"action": "restart", **_or_refusal(galera_restart_plan, states, order, scope)}


def galera_not_synced(states: Mapping[str, Mapping[str, Any]], members: Iterable[str], size: int) -> list[str]:
    """The members not Synced in a Primary component of ``size`` members, each with what it reports."""
    problems = []
    for host in members:
        raw = states.get(host)
        if raw is None:
            problems.append(f"{host} (did not answer)")
            continue
        node = _node(host, raw)
        w = node["wsrep"]
        if not node["running"]:
            problems.append(f"{host} (mariadb {node['unit']})")
        elif not node["answers"]:
            problems.append(f"{host} (does not answer SQL: {node['sql_error']})")
        elif w["cluster_status"] != "Primary" or w["local_state"] != "Synced" or w["cluster_size"] != int(size):
            problems.append(f"{host} ({w['cluster_status']}, {w['local_state']}, size {w['cluster_size']})")
    return problems


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict:
        return {
            "galera_bootstrap_choice": galera_bootstrap_choice,
            "galera_first_error": galera_first_error,
            "galera_grastate": galera_grastate,
            "galera_not_synced": galera_not_synced,
            "galera_recovered_position": galera_recovered_position,
            "galera_restart_order": galera_restart_order,
            "galera_restart_plan": galera_restart_plan,
            "galera_start_plan": galera_start_plan,
            "galera_wsrep_status": galera_wsrep_status,
        }
