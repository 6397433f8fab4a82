"""``deployment start|stop`` and ``services start|stop|restart``, kayobe style: ansible-runner, vCenter,
the SSH wait and the health collectors are fakes that record what they were asked, in order.

The runs are checked as ansible_runner.run receives them (playbook, limit, extra vars read back from
the private data dir); the vSphere side is tested against the simulator in tests/vsphere/test_power.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import pytest
from click.testing import CliRunner

from viocli.cli.main import cli
from viocli.errors import BadInput, NodesUnreachable, OperationFailed, Refused
from viocli.health.result import Result, Status
from viocli.inventory.load import load_inventory
from viocli.inventory.topology import allocate, resolve_nodes
from viocli.ops import configure as configure_module
from viocli.ops import lifecycle
from viocli.ops import status as ops_status
from viocli.ops.status import StatusReport
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings
from viocli.state.lock import DeploymentLock, LockHolder
from viocli.state.store import StateStore
from viocli.vsphere.power import NodeVM

from .test_command_playbooks import FakeRunner

REPO = Path(__file__).resolve().parents[2]
NAME = "vio-prod"  # inventory/ha.yml: loadbalancer01-02, database01-03, controller01-02, compute01-02
NODES = [
    "compute01",
    "compute02",
    "controller01",
    "controller02",
    "database01",
    "database02",
    "database03",
    "loadbalancer01",
    "loadbalancer02",
]
IN_ORDER = [  # as the inventory lists them (the order of the runs' limits)
    "loadbalancer01",
    "loadbalancer02",
    "database01",
    "database02",
    "database03",
    "controller01",
    "controller02",
    "compute01",
    "compute02",
]


class RecordingRunner(FakeRunner):
    """The fake ansible-runner, also noting each run in the shared call list."""

    def __init__(self, calls: list[Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.log = calls

    def __call__(self, **kwargs: Any):
        self.log.append(("playbook", kwargs["playbook"]))
        if self.meanwhile is not None:
            self.meanwhile()
        return super().__call__(**kwargs)

    meanwhile: Any = None  # what happens elsewhere while the playbook runs


def unreachable(host: str) -> dict[str, Any]:
    """Events of a run where ``host`` did not answer."""
    return dict(
        events=[
            {"event": "runner_on_unreachable", "event_data": {"host": host, "task": "Stop", "res": {"msg": "timeout"}}},
            {"event": "playbook_on_stats", "event_data": {"dark": {host: 1}, "failures": {}}},
        ],
        status="failed",
        rc=4,
    )


def failed(host: str, task: str, msg: str) -> dict[str, Any]:
    """Events of a run where ``task`` failed on ``host``."""
    return dict(
        events=[
            {"event": "runner_on_failed", "event_data": {"host": host, "task": task, "res": {"msg": msg}}},
            {"event": "playbook_on_stats", "event_data": {"failures": {host: 1}, "dark": {}}},
        ],
        status="failed",
        rc=2,
    )


class FakeVCenter:
    """The deployment's VMs as vCenter holds them: node -> power state (absent: no such VM)."""

    def __init__(self, calls: list[Any]):
        self.calls = calls
        self.states: dict[str, str] = dict.fromkeys(NODES, "poweredOn")

    @contextmanager
    def session(self, settings, deployment) -> Iterator[FakeVCenter]:
        self.calls.append("connect")
        yield self

    def find_vms(self, si, datacenter, nodes, vm_ids) -> dict[str, NodeVM]:
        assert datacenter == "DC01"
        return {
            n.name: NodeVM(n.name, n.vm_name, SimpleNamespace(_moId=f"vm-{n.name}"), self.states[n.name])
            if n.name in self.states
            else NodeVM(n.name, n.vm_name)
            for n in nodes
        }

    def _power(self, what: str, vms, state: str) -> list[str]:
        todo = sorted(v.node for v in vms if self.states[v.node] != state)
        self.calls.append((what, todo))
        for node in todo:
            self.states[node] = state
        return todo

    def power_on(self, si, vms) -> list[str]:
        return self._power("power_on", vms, "poweredOn")

    def power_off(self, si, vms) -> list[str]:
        return self._power("power_off", vms, "poweredOff")


def report(*failures: str) -> StatusReport:
    names = ["VerifyVMPowerState", "VerifyGaleraCluster", "VerifyOpenStackAPIs"]
    results = [
        Result(
            n,
            Status.FAILURE if n in failures else Status.SUCCESS,
            ["database01"] if n in failures else [],
            f"{n}: broken" if n in failures else "ok",
        )
        for n in names
    ]
    return StatusReport(NAME, results, 0.5)


class Env:
    """One HA deployment on a fresh OMS, with every outside part faked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, example):
        self.monkeypatch = monkeypatch
        self.calls: list[Any] = []
        self.vcenter = FakeVCenter(self.calls)
        self.reports: list[StatusReport] = []
        self.settings = load_settings()
        inventory = example("ha")
        loaded = load_inventory(inventory)
        store = StateStore.open_writable(self.settings.db_path)
        store.register_deployment(NAME, inventory, "ha")
        store.record_nodes(NAME, resolve_nodes(loaded.model, allocate(loaded.model)))
        store.set_deployment_status(NAME, "running")
        store.close()
        SecretStore(self.settings.deployment_dir(NAME)).set("vcenter_password", "VcPass-0123456789")
        monkeypatch.setenv("VIOCLI_PLAYBOOKS_DIR", str(REPO / "playbooks"))
        monkeypatch.setattr(lifecycle, "vcenter_session", self.vcenter.session)
        monkeypatch.setattr(lifecycle, "find_vms", self.vcenter.find_vms)
        monkeypatch.setattr(lifecycle, "power_on", self.vcenter.power_on)
        monkeypatch.setattr(lifecycle, "power_off", self.vcenter.power_off)
        monkeypatch.setattr(lifecycle, "wait_for_ssh", lambda addresses: self.calls.append(("ssh", sorted(addresses))))
        monkeypatch.setattr(ops_status, "deployment_status", self._status)
        self.runner = self.use_runner()

    def use_runner(self, **kwargs: Any) -> RecordingRunner:
        self.runner = RecordingRunner(self.calls, **kwargs)
        self.monkeypatch.setattr(ansible_runner, "run", self.runner)
        return self.runner

    def _status(self, settings, name):
        self.calls.append("status")
        assert name == NAME
        return self.reports.pop(0) if self.reports else report()

    def set_status(self, status: str) -> None:
        store = StateStore.open_writable(self.settings.db_path)
        store.set_deployment_status(NAME, status)
        store.close()

    @property
    def status(self) -> str:
        store = StateStore.open_readonly(self.settings.db_path)
        try:
            return store.deployment(NAME).status
        finally:
            store.close()

    def history(self) -> list[tuple[str, str]]:
        store = StateStore.open_readonly(self.settings.db_path)
        try:
            return [(op.command, op.result) for op in reversed(store.operations(NAME))]
        finally:
            store.close()

    def run(self) -> tuple[str, str | None, dict[str, Any]]:
        """The one playbook run: playbook, limit, extra vars as Ansible got them."""
        (call,) = self.runner.calls
        return call["playbook"], call["limit"], call["extravars_file"]


@pytest.fixture
def env(viocli_env, example, monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(monkeypatch, example)


def _hold_lock(settings) -> DeploymentLock:
    holder = LockHolder(command="deployment configure", pid=os.getpid(), user="alice", started_at="now")
    return DeploymentLock(settings.state_dir / "locks", NAME).acquire(holder)


# --- deployment start ---------------------------------------------------------------------------
def test_start_powers_on_only_the_off_vms_then_waits_for_ssh_starts_and_checks_health(env: Env) -> None:
    env.set_status("stopped")
    env.vcenter.states.update(database01="poweredOff", controller02="poweredOff")
    said: list[str] = []
    shown: list[StatusReport] = []
    result = lifecycle.start(env.settings, NAME, say=said.append, show_status=shown.append)
    assert env.calls == [
        "connect",
        ("power_on", ["controller02", "database01"]),
        ("ssh", NODES),
        ("playbook", "start.yml"),
        "status",
    ]
    assert env.run() == ("start.yml", None, {"viocli_action": "start"})
    assert result.powered_on == ["controller02", "database01"]
    assert shown == [result.report] and not result.report.failed
    assert env.status == "running"
    assert env.history() == [("deployment start", "succeeded")]
    store = StateStore.open_readonly(env.settings.db_path)
    assert {(r.name, r.vm_id, r.status) for r in store.nodes(NAME)} == {(n, f"vm-{n}", "running") for n in NODES}
    store.close()
    assert said[0] == "powering on 2 of 9 VMs: vio-prod-DB-0, vio-prod-Controller-1"
    assert said[1:3] == ["waiting for SSH on 9 nodes", "starting the services (Galera from its most advanced member)"]
    assert said[3].startswith("deployment vio-prod is running: 9 VMs (2 powered on)")


def test_start_of_a_running_deployment_powers_on_nothing_and_still_starts_the_services(env: Env) -> None:
    # All three database nodes were killed: their VMs are on, their services are not. start brings them back.
    said: list[str] = []
    result = lifecycle.start(env.settings, NAME, say=said.append)
    assert env.calls == ["connect", ("ssh", NODES), ("playbook", "start.yml"), "status"]
    assert result.powered_on == [] and said[0] == "all 9 VMs are powered on"


def test_start_exits_1_naming_the_failed_collectors_after_showing_them(env: Env) -> None:
    env.reports = [report("VerifyGaleraCluster", "VerifyOpenStackAPIs")]
    shown: list[StatusReport] = []
    with pytest.raises(OperationFailed) as caught:
        lifecycle.start(env.settings, NAME, show_status=shown.append, health_wait=0)
    assert caught.value.exit_code == 1
    assert caught.value.message == (
        "deployment vio-prod started but is not healthy: VerifyGaleraCluster, VerifyOpenStackAPIs report FAILURE"
    )
    assert len(shown) == 1 and len(shown[0].failed) == 2, "the table is shown before the command fails"
    assert env.status == "running", "the services did start; the health is what failed"
    assert env.history() == [("deployment start", "failed")]


def test_start_checks_health_again_while_a_collector_fails_for_a_while(env: Env, monkeypatch) -> None:
    env.reports = [report("VerifyGaleraCluster"), report()]
    sleeps: list[float] = []
    monkeypatch.setattr(lifecycle.time, "sleep", sleeps.append)
    said: list[str] = []
    result = lifecycle.start(env.settings, NAME, say=said.append, health_wait=60)
    assert env.calls.count("status") == 2 and sleeps == [lifecycle.HEALTH_RETRY_SECONDS]
    assert "VerifyGaleraCluster report FAILURE; checking again in 10 s" in said
    assert not result.report.failed


@pytest.mark.parametrize("status", ["planned", "provisioning", "configuring"])
def test_start_refuses_a_deployment_whose_creation_did_not_finish(env: Env, status: str) -> None:
    env.set_status(status)
    with pytest.raises(Refused) as caught:
        lifecycle.start(env.settings, NAME)
    assert caught.value.exit_code == 4
    assert caught.value.message == f"deployment vio-prod is {status}; start needs a created deployment"
    assert "sudo viocli deployment create -i" in caught.value.hint
    assert env.calls == [] and env.history() == []


def test_start_refuses_when_nothing_exists_and_names_an_unknown_deployment(viocli_env) -> None:
    with pytest.raises(Refused, match="no deployment exists on this OMS; nothing to start"):
        lifecycle.start(load_settings(), None)
    with pytest.raises(BadInput, match="deployment 'vio-prd' is not known on this OMS"):
        lifecycle.start(load_settings(), "vio-prd")
    assert not (viocli_env / "state").exists()


def test_start_refuses_a_missing_vm_before_powering_anything_on(env: Env) -> None:
    env.set_status("stopped")
    del env.vcenter.states["database02"]
    env.vcenter.states["database01"] = "poweredOff"
    with pytest.raises(Refused) as caught:
        lifecycle.start(env.settings, NAME)
    assert caught.value.message == (
        "deployment vio-prod: vCenter has no VM for database02 (VM vio-prod-DB-1); start cannot bring it back"
    )
    assert env.calls == ["connect"] and env.status == "stopped"


def test_start_refuses_while_another_operation_holds_the_lock(env: Env) -> None:
    lock = _hold_lock(env.settings)
    try:
        with pytest.raises(Refused, match="deployment 'vio-prod' is busy: 'deployment configure'") as caught:
            lifecycle.start(env.settings, NAME)
    finally:
        lock.release()
    assert caught.value.exit_code == 4 and env.calls == []


def test_a_failed_start_playbook_records_nothing_and_running_it_again_completes(env: Env) -> None:
    env.set_status("stopped")
    env.use_runner(**failed("database02", "Start mariadb", "wsrep: no primary component"))
    with pytest.raises(OperationFailed, match=r"start\.yml on vio-prod failed on database02"):
        lifecycle.start(env.settings, NAME)
    assert env.status == "stopped" and "status" not in env.calls
    env.calls.clear()
    env.use_runner()
    lifecycle.start(env.settings, NAME)
    assert env.status == "running"


# --- deployment stop ----------------------------------------------------------------------------
def test_stop_asks_stops_the_services_then_powers_off_every_vm(env: Env) -> None:
    asked: list[list[str]] = []
    said: list[str] = []
    result = lifecycle.stop(env.settings, NAME, confirm=lambda lines: asked.append(lines) or True, say=said.append)
    assert env.calls == ["connect", ("playbook", "stop.yml"), "connect", ("power_off", NODES)]
    assert env.run() == ("stop.yml", None, {"viocli_action": "stop"})
    assert asked[0][0] == "deployment vio-prod: stop every service (Galera last), then power off 9 VMs:"
    assert len(asked[0]) == 10
    assert result.powered_off == NODES and env.status == "stopped"
    assert said[0] == "stopping the services (Galera last, one member at a time)"
    assert said[1].startswith("powering off 9 VMs: ")
    assert env.history() == [("deployment stop", "succeeded")]


def test_stop_cancelled_at_the_question_changes_nothing(env: Env) -> None:
    with pytest.raises(Refused, match="deployment stop cancelled; nothing was changed"):
        lifecycle.stop(env.settings, NAME, confirm=lambda lines: False)
    assert env.calls == ["connect"] and env.status == "running"


def test_stop_never_powers_off_after_a_service_failed_to_stop(env: Env) -> None:
    env.use_runner(**failed("database02", "Stop mariadb", "mariadb did not stop within 300 s"))
    with pytest.raises(OperationFailed) as caught:
        lifecycle.stop(env.settings, NAME, confirm=lambda lines: True)
    error = caught.value
    assert error.exit_code == 1
    assert error.message == (
        "the services did not stop cleanly, so no VM was powered off: stop.yml on vio-prod failed on database02"
    )
    assert "failed on database02: TASK [Stop mariadb]: mariadb did not stop within 300 s" in error.details
    assert "sudo viocli deployment stop -d vio-prod again" in error.hint and "crash Galera" in error.hint
    assert not [c for c in env.calls if c[0] == "power_off"]
    assert env.status == "running"


def test_stop_never_powers_off_when_a_running_node_is_unreachable(env: Env) -> None:
    env.use_runner(**unreachable("database03"))
    with pytest.raises(NodesUnreachable) as caught:
        lifecycle.stop(env.settings, NAME, confirm=lambda lines: True, force=True)
    assert caught.value.exit_code == 3
    assert caught.value.message == (
        "the services did not stop cleanly, so no VM was powered off: stop.yml on vio-prod: unreachable node(s): "
        "database03"
    )
    assert "power its VM off in vCenter and run sudo viocli deployment stop -d vio-prod --force" in caught.value.hint
    assert not [c for c in env.calls if c[0] == "power_off"] and env.status == "running"


def test_stop_with_a_vm_already_off_refuses_unless_forced_then_stops_the_others(env: Env) -> None:
    env.vcenter.states["database03"] = "poweredOff"
    with pytest.raises(Refused) as caught:
        lifecycle.stop(env.settings, NAME, confirm=lambda lines: True)
    assert caught.value.exit_code == 4
    assert caught.value.message == (
        "deployment vio-prod: database03 (VM vio-prod-DB-2) is poweredOff, so its services cannot be stopped "
        "cleanly; nothing was changed"
    )
    assert "sudo viocli deployment stop --force -d vio-prod" in caught.value.hint
    assert env.runner.calls == []

    env.calls.clear()
    result = lifecycle.stop(env.settings, NAME, confirm=lambda lines: True, force=True)
    others = [n for n in IN_ORDER if n != "database03"]
    assert env.calls == ["connect", ("playbook", "stop.yml"), "connect", ("power_off", sorted(others))]
    assert env.run() == ("stop.yml", ":".join(others), {"viocli_action": "stop"})
    assert result.left_off == ("database03",) and env.status == "stopped"


def test_a_vm_powered_on_by_someone_else_during_the_stop_is_left_on_and_the_stop_resumes(env: Env) -> None:
    env.vcenter.states["database03"] = "poweredOff"
    env.runner.meanwhile = lambda: env.vcenter.states.update(database03="poweredOn")
    with pytest.raises(OperationFailed) as caught:
        lifecycle.stop(env.settings, NAME, confirm=lambda lines: True, force=True)
    assert caught.value.message == (
        "deployment vio-prod: database03 (VM vio-prod-DB-2) was powered on during the stop; its services were "
        "not stopped, so it was left on (8 other VMs powered off)"
    )
    assert env.vcenter.states["database03"] == "poweredOn" and env.status == "stopping"
    env.use_runner()
    lifecycle.stop(env.settings, NAME, confirm=lambda lines: True)
    assert env.run() == ("stop.yml", "database03", {"viocli_action": "stop"})
    assert env.calls[-1] == ("power_off", ["database03"]) and env.status == "stopped"


def test_stop_of_a_stopped_deployment(env: Env) -> None:
    env.set_status("stopped")
    env.vcenter.states = dict.fromkeys(NODES, "poweredOff")
    result = lifecycle.stop(env.settings, NAME, confirm=lambda lines: pytest.fail("asked"))
    assert result.already_stopped and env.calls == ["connect"]

    env.vcenter.states["controller01"] = "poweredOn"
    with pytest.raises(Refused) as caught:
        lifecycle.stop(env.settings, NAME, confirm=lambda lines: True)
    assert caught.value.message == (
        "deployment vio-prod is recorded stopped, but 1 of its VMs are powered on: "
        "controller01 (VM vio-prod-Controller-0)"
    )
    assert "sudo viocli deployment start -d vio-prod" in caught.value.hint
    assert env.runner.calls == []


def test_an_interrupted_stop_resumes_on_the_vms_still_on(env: Env) -> None:
    env.set_status("stopping")  # the services stopped; the power-off was cut short
    for node in IN_ORDER[:5]:
        env.vcenter.states[node] = "poweredOff"
    lifecycle.stop(env.settings, NAME, confirm=lambda lines: True)
    assert env.run() == ("stop.yml", ":".join(IN_ORDER[5:]), {"viocli_action": "stop"})
    assert env.calls[-1] == ("power_off", sorted(IN_ORDER[5:])) and env.status == "stopped"


def test_stop_refuses_a_deployment_never_created_and_when_locked(env: Env) -> None:
    env.set_status("provisioning")
    with pytest.raises(Refused, match="deployment vio-prod is provisioning; stop needs a created deployment"):
        lifecycle.stop(env.settings, NAME, confirm=lambda lines: True)
    env.set_status("running")
    lock = _hold_lock(env.settings)
    try:
        with pytest.raises(Refused, match="is busy"):
            lifecycle.stop(env.settings, NAME, confirm=lambda lines: True)
    finally:
        lock.release()
    assert env.calls == []


def test_configure_and_services_of_a_stopped_deployment_say_to_start_it(env: Env) -> None:
    env.set_status("stopped")
    expected = "deployment vio-prod is stopped; start it first: sudo viocli deployment start"
    with pytest.raises(Refused) as caught:
        configure_module.configure(env.settings, None, NAME)
    assert caught.value.message == expected and caught.value.exit_code == 4
    with pytest.raises(Refused) as caught:
        lifecycle.services(env.settings, NAME, "restart")
    assert caught.value.message == expected
    env.set_status("stopping")
    with pytest.raises(Refused, match="is stopping \\(a deployment stop did not finish\\)") as caught:
        configure_module.configure(env.settings, None, NAME)
    assert "sudo viocli deployment stop -d vio-prod" in caught.value.hint
    assert env.runner.calls == []


# --- services start|stop|restart ----------------------------------------------------------------
# (action, roles, nodes, services) -> (playbook, limit, extra vars)
SERVICE_CASES = [
    (("restart", (), (), ()), ("restart.yml", None, {"viocli_action": "restart"})),
    (("start", (), (), ()), ("start.yml", None, {"viocli_action": "start"})),
    (("stop", (), (), ()), ("stop.yml", None, {"viocli_action": "stop"})),
    (("start", ("database",), (), ()), ("start.yml", "database", {"viocli_action": "start"})),
    (
        ("stop", ("controller", "loadbalancer"), (), ()),
        ("stop.yml", "controller:loadbalancer", {"viocli_action": "stop"}),
    ),
    (("restart", (), ("controller01",), ()), ("restart.yml", "controller01", {"viocli_action": "restart"})),
    (
        ("restart", (), ("controller01,controller02",), ()),
        ("restart.yml", "controller01:controller02", {"viocli_action": "restart"}),
    ),
    (
        ("restart", (), (), ("rabbitmq", "mariadb")),
        ("restart.yml", None, {"viocli_action": "restart", "viocli_service_filter": ["mariadb", "rabbitmq"]}),
    ),
    (
        ("restart", (), ("database03",), ("rabbitmq",)),
        ("restart.yml", "database03", {"viocli_action": "restart", "viocli_service_filter": ["rabbitmq"]}),
    ),
    (
        ("stop", ("compute",), (), ("nova_compute",)),
        ("stop.yml", "compute", {"viocli_action": "stop", "viocli_service_filter": ["nova_compute"]}),
    ),
    (
        ("start", ("controller",), ("database01",), ("chrony",)),
        ("start.yml", "controller:database01", {"viocli_action": "start", "viocli_service_filter": ["chrony"]}),
    ),
    (
        ("restart", (), (), ("keystone,nova", "keystone")),
        ("restart.yml", None, {"viocli_action": "restart", "viocli_service_filter": ["keystone", "nova"]}),
    ),
]


@pytest.mark.parametrize(("args", "expected"), SERVICE_CASES, ids=lambda v: " ".join(map(str, v)) if v else "")
def test_services_produce_the_exact_run(env: Env, args, expected) -> None:
    action, roles, nodes, services = args
    result = lifecycle.services(env.settings, NAME, action, roles=roles, nodes=nodes, services=services)
    assert env.run() == expected
    assert env.calls == [("playbook", expected[0])], "services never touch vCenter"
    assert env.history() == [(f"services {action}", "succeeded")]
    assert result.action == action


def test_services_say_what_they_act_on(env: Env) -> None:
    said: list[str] = []
    lifecycle.services(env.settings, NAME, "restart", services=["rabbitmq"], say=said.append)
    assert said == ["restarting rabbitmq on database01-03 (clustered and load-balanced services one node at a time)"]
    said.clear()
    lifecycle.services(env.settings, NAME, "stop", roles=["controller"], say=said.append)
    assert said == ["stopping every service on controller01-02"]


@pytest.mark.parametrize(
    ("kwargs", "message", "hint"),
    [
        (
            {"nodes": ["controler01"]},
            "--node controler01: no such node in deployment vio-prod",
            "did you mean controller01?",
        ),
        ({"nodes": ["web01"]}, "--node web01: no such node in deployment vio-prod", "its nodes: loadbalancer01, "),
        ({"services": ["rabitmq"]}, "--service rabitmq: no such service", "did you mean rabbitmq?"),
        ({"services": ["nova-compute"]}, "--service nova-compute: no such service", "did you mean nova_compute?"),
        ({"services": ["web"]}, "--service web: no such service", "services: chrony, mariadb, rabbitmq, "),
        ({"roles": ["databse"]}, "--role databse: no such role", "did you mean database?"),
        (
            {"services": ["rabbitmq"], "nodes": ["controller01"]},
            "--service rabbitmq --node controller01 selects nothing: rabbitmq runs on database nodes: database01-03",
            "pick among those nodes, or leave out --node",
        ),
        (
            {"services": ["nova_compute"], "roles": ["controller"]},
            "--service nova_compute --role controller selects nothing: nova_compute runs on compute nodes: "
            "compute01-02",
            "pick among those nodes, or leave out --role",
        ),
        (
            {"services": ["keystone"], "nodes": ["controller01", "database01"]},
            "--node database01 runs none of keystone: keystone runs on controller nodes: controller01-02",
            None,
        ),
        (
            {"services": ["keystone", "haproxy"], "roles": ["controller", "loadbalancer", "database"]},
            "--role database runs none of keystone, haproxy: keystone runs on controller nodes: controller01-02; "
            "haproxy runs on loadbalancer nodes: loadbalancer01-02",
            None,
        ),
    ],
)
def test_services_refuse_bad_or_empty_selections_and_change_nothing(env: Env, kwargs, message, hint) -> None:
    env.set_status("stopped")  # bad input is reported first, whatever the status
    with pytest.raises(BadInput) as caught:
        lifecycle.services(env.settings, NAME, "restart", **kwargs)
    assert caught.value.exit_code == 2
    assert caught.value.message == message
    if hint is None:
        assert caught.value.hint is None
    else:
        assert caught.value.hint.startswith(hint)
    assert env.calls == [] and env.history() == []
    assert not (env.settings.state_dir / "locks").exists()


def test_services_refuse_when_not_running_or_locked(env: Env) -> None:
    env.set_status("configuring")
    with pytest.raises(Refused) as caught:
        lifecycle.services(env.settings, NAME, "start")
    assert caught.value.message == "deployment vio-prod is configuring; services start needs a running deployment"
    assert caught.value.exit_code == 4
    env.set_status("running")
    lock = _hold_lock(env.settings)
    try:
        with pytest.raises(Refused, match="is busy") as caught:
            lifecycle.services(env.settings, NAME, "restart", nodes=["controller01"])
    finally:
        lock.release()
    assert caught.value.exit_code == 4 and env.calls == []


def test_services_in_compact_mode_follow_the_groups_the_controller_holds(viocli_env, example, monkeypatch) -> None:
    from viocli.ops.context import resolve_deployment

    deployment = resolve_deployment(load_settings(), None, example("compact"), None)
    groups = {"rabbitmq": "database", "keystone": "controller", "nova_compute": "compute"}
    selection = lifecycle.select(deployment, roles=["database"], services=["keystone"], groups=groups)
    assert selection.nodes == ("controller01",)
    with pytest.raises(BadInput, match="rabbitmq runs on database nodes: controller01"):
        lifecycle.select(deployment, nodes=["compute01"], services=["rabbitmq"], groups=groups)


def test_node_ranges() -> None:
    assert lifecycle.node_ranges(["database03", "database01", "database02"]) == "database01-03"
    assert lifecycle.node_ranges(["controller01"]) == "controller01"
    assert lifecycle.node_ranges(["compute01", "compute03", "compute04", "lb"]) == "compute01, compute03-04, lb"
    assert lifecycle.node_ranges(["loadbalancer01", "database01", "database02"]) == "database01-02, loadbalancer01"


# --- the command line ---------------------------------------------------------------------------
@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def test_cli_start_says_each_step_and_ends_with_the_status_table(env: Env, as_root) -> None:
    env.set_status("stopped")
    env.vcenter.states["compute02"] = "poweredOff"
    result = CliRunner().invoke(cli, ["deployment", "start", "-d", NAME])
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if line.startswith("viocli: ")]
    assert steps[:3] == [
        "viocli: powering on 1 of 9 VMs: vio-prod-ComputeDriver-1",
        "viocli: waiting for SSH on 9 nodes",
        "viocli: starting the services (Galera from its most advanced member)",
    ]
    assert steps[3].startswith("viocli: deployment vio-prod is running: 9 VMs (1 powered on)")
    for text in ("collector", "VerifyVMPowerState", "VerifyGaleraCluster", "SUCCESS"):
        assert text in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("deployment vio-prod: 3 SUCCESS")


def test_cli_start_exits_1_after_printing_the_table(env: Env, as_root) -> None:
    env.reports = [report("VerifyGaleraCluster")] * 100
    lifecycle_wait = lifecycle.HEALTH_WAIT_SECONDS
    try:
        lifecycle.HEALTH_WAIT_SECONDS = 0
        result = CliRunner().invoke(cli, ["deployment", "start"])
    finally:
        lifecycle.HEALTH_WAIT_SECONDS = lifecycle_wait
    assert result.exit_code == 1
    assert "database01" in result.stdout and "FAILURE" in result.stdout
    assert "viocli: error: deployment vio-prod started but is not healthy: VerifyGaleraCluster report FAILURE" in (
        result.stderr
    )


def test_cli_stop_asks_and_force_does_not(env: Env, as_root) -> None:
    result = CliRunner().invoke(cli, ["deployment", "stop"], input="n\n")
    assert result.exit_code == 4
    assert "power off 9 VMs" in result.stdout and "cancelled" in result.stderr
    assert env.runner.calls == []
    result = CliRunner().invoke(cli, ["deployment", "stop", "-f"])
    assert result.exit_code == 0, result.output
    assert "stop this deployment" not in result.stderr
    assert result.stdout.splitlines()[-1] == "deployment vio-prod is stopped: services stopped, 9 VMs powered off"
    result = CliRunner().invoke(cli, ["deployment", "stop", "--force"])
    assert result.exit_code == 0
    assert result.stdout == "deployment vio-prod is already stopped: all 9 VMs are powered off\n"


def test_cli_services(env: Env, as_root) -> None:
    result = CliRunner().invoke(cli, ["services", "restart", "-s", "rabbitmq", "-n", "database03"])
    assert result.exit_code == 0, result.output
    assert env.run() == (
        "restart.yml",
        "database03",
        {"viocli_action": "restart", "viocli_service_filter": ["rabbitmq"]},
    )
    assert result.stdout.startswith("services restart: rabbitmq on database03, 0 changes in ")

    result = CliRunner().invoke(cli, ["services", "stop", "--service", "rabbitmq", "--node", "controller01"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "viocli: error: --service rabbitmq --node controller01 selects nothing: rabbitmq runs on database nodes: "
        "database01-03"
    )
    result = CliRunner().invoke(cli, ["services", "start", "--node", "controler01"])
    assert result.exit_code == 2 and "hint: did you mean controller01?" in result.stderr
    result = CliRunner().invoke(cli, ["services", "start", "--role", "databse"])
    assert result.exit_code == 2 and "databse" in result.stderr
    assert len(env.runner.calls) == 1


def test_lifecycle_commands_refuse_non_root(env: Env, monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for argv in (["deployment", "start"], ["deployment", "stop", "-f"], ["services", "restart"]):
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 4 and "must run as root" in result.stderr
    assert env.calls == []
