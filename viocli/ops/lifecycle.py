"""``deployment start|stop`` and ``services start|stop|restart``: a created deployment's lifecycle.

start: power on the VMs that are off, wait for SSH, start every service (start.yml: Galera from its
most advanced member), record ``running``, then check health with ``deployment status``'s collectors.
stop: stop every service (stop.yml: Galera last, one member at a time) and, only once that succeeded,
power the VMs off; ``stopping`` records that the services are down, ``stopped`` that the VMs are off.
services: start, stop or restart (rolling) some services on some roles or nodes; the VMs stay up.

Each takes the deployment's lock, refuses what does not apply before changing anything, and
completes the job when run again after a failure or an interruption.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from viocli.errors import BadInput, NodesUnreachable, OperationFailed, Refused, ViocliError
from viocli.inventory.modes import ROLES
from viocli.names import did_you_mean
from viocli.ops import plans
from viocli.ops import status as ops_status
from viocli.ops.ansible import load_secrets, run_ansible
from viocli.ops.configure import existing_deployment, status_refused
from viocli.ops.context import Deployment
from viocli.ops.deploy import connect_vcenter, wait_for_ssh
from viocli.ops.operation import operation
from viocli.ops.status import StatusReport
from viocli.runner.engine import RunResult
from viocli.services import load_services
from viocli.settings import Settings
from viocli.state.store import StateStore
from viocli.vsphere.power import POWERED_ON, NodeVM, find_vms, power_off, power_on

STARTABLE = ("running", "stopping", "stopped")
STOPPABLE = ("running", "configuring", "stopping")
SERVICEABLE = ("running",)
CREATED = "a created deployment"

# After start, the collectors run again while any reports FAILURE (nova-compute reports up on its
# first heartbeat, a Galera joiner needs a moment to be Synced), for at most this long.
HEALTH_WAIT_SECONDS = 180.0
HEALTH_RETRY_SECONDS = 10.0

SERVICE_VERBS = {"start": "starting", "stop": "stopping", "restart": "restarting"}


def _quiet(_text: str) -> None:
    """The default ``say``: progress goes nowhere."""


@dataclass
class StartResult:
    deployment: str
    nodes: int
    powered_on: list[str]
    started: RunResult
    report: StatusReport


@dataclass
class StopResult:
    deployment: str
    nodes: int
    powered_off: list[str]
    stopped: RunResult | None  # None: nothing to stop (already stopped)
    already_stopped: bool = False
    left_off: tuple[str, ...] = ()  # nodes whose VMs were off before the stop (--force)


@dataclass(frozen=True)
class Selection:
    """What ``services ACTION`` acts on: the nodes the run reaches, the services it touches."""

    nodes: tuple[str, ...]
    services: tuple[str, ...]
    every_node: bool
    every_service: bool

    def describe(self) -> str:
        services = "every service" if self.every_service else ", ".join(self.services)
        nodes = "every node" if self.every_node and self.every_service else node_ranges(self.nodes)
        return f"{services} on {nodes}"


@dataclass
class ServicesResult:
    deployment: str
    action: str
    selection: Selection
    run: RunResult


# --- shared steps -------------------------------------------------------------------------------
@contextmanager
def vcenter_session(settings: Settings, deployment: Deployment) -> Iterator[Any]:
    """A vCenter login for the deployment (its stored password), logged out afterwards."""
    si = connect_vcenter(deployment, load_secrets(settings, deployment)["vcenter_password"])
    try:
        yield si
    finally:
        from pyVim.connect import Disconnect

        Disconnect(si)


def locate_vms(si: Any, store: StateStore, deployment: Deployment) -> dict[str, NodeVM]:
    """Every node's VM (by the VM id the state store keeps, else by name); learned ids are recorded."""
    recorded = {r.name: r.vm_id for r in store.nodes(deployment.name)}
    vms = find_vms(si, deployment.loaded.model.vcenter.datacenter, deployment.nodes, recorded)
    for node, found in vms.items():
        if found.vm_id is not None and found.vm_id != recorded.get(node):
            store.update_node(deployment.name, node, vm_id=found.vm_id)
    return vms


def _state(found: NodeVM) -> str:
    return found.power_state or "missing from vCenter"


def _under_lock(store: StateStore, deployment: Deployment, allowed: Sequence[str], verb: str, needs: str) -> str:
    """The status again, now that the lock is held (another command may have changed it meanwhile)."""
    record = store.deployment(deployment.name)
    status = record.status if record else "gone"
    if status not in allowed:
        raise status_refused(deployment, status, verb, needs)
    return status


def _set_status(store: StateStore, deployment: Deployment, status: str) -> None:
    store.set_deployment_status(deployment.name, status)
    for node in deployment.nodes:
        store.update_node(deployment.name, node.name, status=status)


# --- deployment start ---------------------------------------------------------------------------
def start(
    settings: Settings,
    name: str | None,
    *,
    say: Callable[[str], None] = _quiet,
    show_status: Callable[[StatusReport], None] | None = None,
    verbosity: int = 0,
    health_wait: float | None = None,
) -> StartResult:
    """Power on the VMs that are off, wait for SSH, start the services, record ``running``, check health.

    ``show_status`` receives the health report before a FAILURE in it ends the command (exit 1).
    """
    deployment, record = existing_deployment(settings, None, name, "start")
    if record.status not in STARTABLE:
        raise status_refused(deployment, record.status, "start", CREATED)
    with operation(settings, deployment.name, "deployment start") as op:
        _under_lock(op.store, deployment, STARTABLE, "start", CREATED)
        with vcenter_session(settings, deployment) as si:
            vms = locate_vms(si, op.store, deployment)
            missing = [v for v in vms.values() if v.vm is None]
            if missing:
                raise Refused(
                    f"deployment {deployment.name}: vCenter has no VM for "
                    f"{', '.join(v.describe() for v in missing)}; start cannot bring it back",
                    hint="clone and configure the missing VMs: "
                    f"sudo viocli deployment create -i {deployment.loaded.path}",
                )
            off = [v for v in vms.values() if v.power_state != POWERED_ON]
            if off:
                say(f"powering on {len(off)} of {len(vms)} VMs: {', '.join(v.vm_name for v in off)}")
                powered_on = power_on(si, off)
            else:
                say(f"all {len(vms)} VMs are powered on")
                powered_on = []
        say(f"waiting for SSH on {len(deployment.nodes)} nodes")
        wait_for_ssh({n.name: str(n.mgmt_ip) for n in deployment.nodes})
        say("starting the services (Galera from its most advanced member)")
        started = run_ansible(settings, deployment, plans.start(deployment), verbosity=verbosity)
        _set_status(op.store, deployment, "running")
        say(
            f"deployment {deployment.name} is running: {len(vms)} VMs ({len(powered_on)} powered on), "
            f"services started in {started.elapsed:.0f} s; checking health"
        )
        report = health_report(
            settings, deployment.name, say, HEALTH_WAIT_SECONDS if health_wait is None else health_wait
        )
        if show_status is not None:
            show_status(report)
        if report.failed:
            raise OperationFailed(
                f"deployment {deployment.name} started but is not healthy: "
                f"{', '.join(r.collector_name for r in report.failed)} report FAILURE",
                hint="run the action of each FAILURE above (sudo viocli deployment status --format json "
                "adds each check's details)",
            )
    return StartResult(deployment.name, len(deployment.nodes), powered_on, started, report)


def health_report(settings: Settings, name: str, say: Callable[[str], None], wait: float) -> StatusReport:
    """``deployment status``'s collectors, run again while any reports FAILURE, for up to ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        report = ops_status.deployment_status(settings, name)
        if not report.failed or time.monotonic() + HEALTH_RETRY_SECONDS > deadline:
            return report
        failed = ", ".join(r.collector_name for r in report.failed)
        say(f"{failed} report FAILURE; checking again in {HEALTH_RETRY_SECONDS:.0f} s")
        time.sleep(HEALTH_RETRY_SECONDS)


# --- deployment stop ----------------------------------------------------------------------------
def stop(
    settings: Settings,
    name: str | None,
    *,
    confirm: Callable[[list[str]], bool],
    say: Callable[[str], None] = _quiet,
    force: bool = False,
    verbosity: int = 0,
) -> StopResult:
    """Stop every service, then power off every VM; record ``stopped``.

    No VM is powered off unless the services stopped cleanly on every node still running: a node
    powered off under a running Galera member can take the cluster down. A node whose VM is already
    off (or gone) makes the stop refuse unless ``force``: then the services stop on the others.
    """
    deployment, record = existing_deployment(settings, None, name, "stop")
    allowed = (*STOPPABLE, "stopped")
    if record.status not in allowed:
        raise status_refused(deployment, record.status, "stop", CREATED)
    dname = deployment.name
    with operation(settings, dname, "deployment stop") as op:
        status = _under_lock(op.store, deployment, allowed, "stop", CREATED)
        with vcenter_session(settings, deployment) as si:
            vms = locate_vms(si, op.store, deployment)
        on = [v for v in vms.values() if v.power_state == POWERED_ON]
        down = [v for v in vms.values() if v.power_state != POWERED_ON]
        if status == "stopped":
            if not on:
                say(f"deployment {dname} is already stopped: its {len(vms)} VMs are powered off")
                return StopResult(dname, len(vms), [], None, already_stopped=True)
            raise Refused(
                f"deployment {dname} is recorded stopped, but {len(on)} of its VMs are powered on: "
                f"{', '.join(v.describe() for v in on)}",
                hint=f"bring the whole deployment back with sudo viocli deployment start -d {dname}, "
                "then stop it again",
            )
        resumed = status == "stopping"
        if down and not resumed and not force:
            raise Refused(
                f"deployment {dname}: {', '.join(f'{v.describe()} is {_state(v)}' for v in down)}, so its "
                "services cannot be stopped cleanly; nothing was changed",
                hint=f"start it (sudo viocli deployment start -d {dname}) and stop it again; or stop the "
                f"services on the other nodes and power them off: sudo viocli deployment stop --force -d {dname}",
            )
        lines = [f"deployment {dname}: stop every service (Galera last), then power off {len(on)} VMs:"]
        lines += [f"  {v.node:<15} {v.vm_name}" for v in on]
        lines += [f"  ({v.describe()} is {_state(v)}: left as it is)" for v in down]
        if on and not confirm(lines):
            raise Refused("deployment stop cancelled; nothing was changed")
        stopped = None
        if on:
            if down:
                # Only the nodes still running: the others cannot be reached.
                run = plans.services(deployment, "stop", nodes=[v.node for v in on])
                say(f"stopping the services on {node_ranges([v.node for v in on])} (Galera last)")
            else:
                run = plans.stop(deployment)
                say("stopping the services (Galera last, one member at a time)")
            stopped = _stop_services(settings, deployment, run, verbosity)
        op.store.set_deployment_status(dname, "stopping")
        with vcenter_session(settings, deployment) as si:
            vms = locate_vms(si, op.store, deployment)  # as they are now, after the playbook
            stopped_on = {v.node for v in on}
            running = [v for v in vms.values() if v.power_state == POWERED_ON and v.node in stopped_on]
            if running:
                say(f"powering off {len(running)} VMs: {', '.join(v.vm_name for v in running)}")
            powered_off = power_off(si, running)
        late = [v for v in vms.values() if v.power_state == POWERED_ON and v.node not in stopped_on]
        if late:  # powered on by someone else during the stop: its services were not stopped
            raise OperationFailed(
                f"deployment {dname}: {', '.join(v.describe() for v in late)} was powered on during the stop; "
                f"its services were not stopped, so it was left on ({len(powered_off)} other VMs powered off)",
                hint=f"run sudo viocli deployment stop -d {dname} again: it stops its services, then powers it off",
            )
        _set_status(op.store, deployment, "stopped")
    return StopResult(dname, len(vms), powered_off, stopped, left_off=tuple(v.node for v in down))


def _stop_services(settings: Settings, deployment: Deployment, run: Any, verbosity: int) -> RunResult:
    """Run the stop playbook; on any failure say that no VM was powered off, and why not."""
    try:
        return run_ansible(settings, deployment, run, verbosity=verbosity)
    except ViocliError as error:
        again = f"sudo viocli deployment stop -d {deployment.name}"
        error.message = f"the services did not stop cleanly, so no VM was powered off: {error.message}"
        if isinstance(error, NodesUnreachable):
            error.hint = (
                f"bring the unreachable node back and run {again} again; if it is down for good, power its VM "
                f"off in vCenter and run {again} --force (it stops the services on the others, then powers them off)"
            )
        else:
            error.hint = (
                f"{error.hint or 'fix the cause shown above'}; then run {again} again (powering off a node "
                "whose services did not stop could crash Galera)"
            )
        raise


# --- services start|stop|restart ----------------------------------------------------------------
def _split(values: Sequence[str]) -> list[str]:
    """``-n a,b`` and ``-n a -n b`` alike, each name once, in the order given."""
    return list(dict.fromkeys(part.strip() for value in values for part in value.split(",") if part.strip()))


def node_ranges(names: Sequence[str]) -> str:
    """``database01, database02, database03`` -> ``database01-03`` (runs of consecutive numbers)."""
    runs: list[tuple[str, int, int, int]] = []  # prefix, width, first, last
    singles: list[str] = []
    for name in sorted(names):
        match = re.fullmatch(r"(.*?)(\d+)", name)
        if match is None:
            singles.append(name)
            continue
        prefix, number, width = match.group(1), int(match.group(2)), len(match.group(2))
        if runs and runs[-1][0] == prefix and runs[-1][1] == width and runs[-1][3] == number - 1:
            runs[-1] = (prefix, width, runs[-1][2], number)
        else:
            runs.append((prefix, width, number, number))
    parts = [f"{p}{a:0{w}d}" if a == b else f"{p}{a:0{w}d}-{b:0{w}d}" for p, w, a, b in runs]
    return ", ".join(parts + singles)


def select(
    deployment: Deployment,
    *,
    roles: Sequence[str] = (),
    nodes: Sequence[str] = (),
    services: Sequence[str] = (),
    groups: Mapping[str, str] | None = None,
) -> Selection:
    """Check ``--role``, ``--node`` and ``--service`` against the deployment; BadInput (exit 2) when a
    name is unknown (with a did-you-mean) or when a filter selects nothing that the others select.

    ``groups``: service name -> the inventory group whose nodes run it (default: the descriptors).
    """
    groups = dict(groups) if groups is not None else {s.name: s.group for s in load_services()}
    names = [n.name for n in deployment.nodes]
    members = {g: [n.name for n in deployment.nodes if g == "all" or g in n.groups] for g in {*ROLES, "all"}}
    for role in roles:
        if role not in ROLES:
            close = did_you_mean(role, ROLES)
            raise BadInput(f"--role {role}: no such role", hint=f"did you mean {close}?" if close else _roles_hint())
        if not members[role]:
            raise BadInput(f"--role {role}: deployment {deployment.name} has no {role} nodes")
    for node in nodes:
        if node not in names:
            close = did_you_mean(node, names)
            raise BadInput(
                f"--node {node}: no such node in deployment {deployment.name}",
                hint=f"did you mean {close}?" if close else f"its nodes: {', '.join(names)}",
            )
    for service in services:
        if service not in groups:
            close = did_you_mean(service, groups)
            raise BadInput(
                f"--service {service}: no such service",
                hint=f"did you mean {close}?" if close else f"services: {', '.join(groups)}",
            )
    limited = bool(roles or nodes)
    chosen = set(names) if not limited else {n for r in roles for n in members[r]} | set(nodes)
    wanted = list(services) or list(groups)

    def runs(service: str) -> list[str]:
        return [n for n in members[groups[service]] if n in chosen]

    def where(service: str) -> str:
        group = groups[service]
        on = "every node" if group == "all" else f"{group} nodes"
        return f"{service} runs on {on}: {node_ranges(members[group])}"

    given = " ".join([*(f"--role {r}" for r in roles), *(f"--node {n}" for n in nodes)])
    options = " and ".join(o for o, used in (("--role", roles), ("--node", nodes)) if used)
    for service in services:
        if not members[groups[service]]:
            raise BadInput(f"--service {service}: deployment {deployment.name} has no {groups[service]} nodes")
        if not runs(service):
            raise BadInput(
                f"--service {service} {given} selects nothing: {where(service)}",
                hint=f"pick among those nodes, or leave out {options}",
            )
    if services:
        for node in nodes:
            if not any(node in members[groups[s]] for s in services):
                raise BadInput(
                    f"--node {node} runs none of {', '.join(services)}: " + "; ".join(where(s) for s in services)
                )
        for role in roles:
            if not any(n in members[groups[s]] for s in services for n in members[role]):
                raise BadInput(
                    f"--role {role} runs none of {', '.join(services)}: " + "; ".join(where(s) for s in services)
                )
    reached = sorted(n for n in chosen if any(n in members[groups[s]] for s in wanted))
    return Selection(tuple(reached), tuple(wanted), every_node=not limited, every_service=not services)


def _roles_hint() -> str:
    return f"roles: {', '.join(ROLES)}"


def services(
    settings: Settings,
    name: str | None,
    action: str,
    *,
    roles: Sequence[str] = (),
    nodes: Sequence[str] = (),
    services: Sequence[str] = (),
    say: Callable[[str], None] = _quiet,
    verbosity: int = 0,
) -> ServicesResult:
    """Start, stop or restart (rolling) the services, on some roles or nodes, or some services, only."""
    if action not in plans.SERVICE_PLAYBOOKS:
        raise BadInput(f"unknown service action {action!r}; use one of {', '.join(plans.SERVICE_PLAYBOOKS)}")
    verb = f"services {action}"
    deployment, record = existing_deployment(settings, None, name, f"{action} the services of")
    roles, nodes, services = list(dict.fromkeys(roles)), _split(nodes), _split(services)
    selection = select(deployment, roles=roles, nodes=nodes, services=services)
    run = plans.services(deployment, action, roles=roles, nodes=nodes, services=services)
    if record.status not in SERVICEABLE:
        raise status_refused(deployment, record.status, verb, "a running deployment")
    with operation(settings, deployment.name, verb) as op:
        _under_lock(op.store, deployment, SERVICEABLE, verb, "a running deployment")
        rolling = " (clustered and load-balanced services one node at a time)" if action == "restart" else ""
        say(f"{SERVICE_VERBS[action]} {selection.describe()}{rolling}")
        result = run_ansible(settings, deployment, run, verbosity=verbosity)
    return ServicesResult(deployment.name, action, selection, result)
