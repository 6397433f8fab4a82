"""``recover``, kayobe style: the playbook run checked as ansible_runner.run gets it (playbook, limit,
extra vars), vCenter, SSH and the health collectors faked and recording what they were asked, in
order. The vSphere side (a VM deleted, cloned again into its rule) runs against the simulator in
tests/vsphere/test_provision.py; the whole command runs in the lab in tests/lab/test_recover.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from viocli.errors import BadInput, Refused
from viocli.health.shell import CommandResult
from viocli.ops import plans, selection
from viocli.ops import recover as ops_recover
from viocli.ops.known_hosts import replace_host_key, write_known_hosts
from viocli.ops.status import StatusReport
from viocli.state.store import StateStore
from viocli.vsphere.power import NodeVM
from viocli.vsphere.provision import ProvisionResult

from .test_lifecycle import NAME, Env

DATABASES = ["database01", "database02", "database03"]


def _status(state: str = "Synced", cluster: str = "Primary", committed: int = 10) -> str:
    return (
        f"wsrep_cluster_status\t{cluster}\nwsrep_local_state\t4\nwsrep_local_state_comment\t{state}\n"
        f"wsrep_last_committed\t{committed}\n"
    )


class FakeShell:
    """SSH to the nodes: ``answers`` maps node -> what `true` and the Galera status query give."""

    def __init__(self, calls: list[Any], down: set[str] = frozenset(), galera: dict[str, str] | None = None):
        self.calls, self.down, self.galera = calls, set(down), galera or {}

    def run(self, node, command: str, timeout: float = 30) -> CommandResult:
        if node.name in self.down:
            return CommandResult(255, "", "ssh: connect to host: No route to host")
        if "wsrep" in command and "pc.bootstrap" not in command:
            text = self.galera.get(node.name, _status())
            return CommandResult(0 if text else 1, text, "" if text else "ERROR 2002: Can't connect")
        self.calls.append(("ssh", node.name, command))
        return CommandResult(0, "", "")

    def close(self) -> None:
        pass


class RecoverEnv(Env):
    """The HA deployment of test_lifecycle with vCenter's VMs, the clone and SSH faked for recover."""

    def __init__(self, monkeypatch, example, *, missing=(), down=(), galera=None):
        super().__init__(monkeypatch, example)
        for node in missing:
            del self.vcenter.states[node]
        self.shell = FakeShell(self.calls, set(down) | set(missing), galera)
        monkeypatch.setattr(ops_recover, "vcenter_session", self.vcenter.session)
        monkeypatch.setattr(ops_recover, "locate_vms", self._locate)
        monkeypatch.setattr(ops_recover, "node_shell", lambda settings, deployment: self.shell)
        monkeypatch.setattr(ops_recover, "destroy_vm", self._destroy)
        monkeypatch.setattr(ops_recover, "provision", self._provision)
        monkeypatch.setattr(ops_recover, "wait_for_guestinfo", self._keys)
        monkeypatch.setattr(
            ops_recover, "wait_for_ssh", lambda addresses: self.calls.append(("ssh-wait", sorted(addresses)))
        )
        monkeypatch.setattr(ops_recover, "health_report", self._health)
        known = self.settings.deployment_dir(NAME) / "known_hosts"
        write_known_hosts(known, {n: ([f"10.0.0.{i}"], "ssh-ed25519 OLDKEY") for i, n in enumerate(DATABASES)})

    def _locate(self, si, store, deployment) -> dict[str, NodeVM]:
        return self.vcenter.find_vms(si, "DC01", deployment.nodes, {})

    def _destroy(self, si, vm, *, label: str) -> bool:
        self.calls.append(("destroy", label))
        return True

    def _provision(self, si, inventory, nodes, *, oms_public_key, say, peers) -> ProvisionResult:
        assert len(peers) == 9
        self.calls.append(("clone", [n.name for n in nodes]))
        vms = {n.name: SimpleNamespace(_moId=f"vm-new-{n.name}") for n in nodes}
        return ProvisionResult(vm_ids={k: v._moId for k, v in vms.items()}, vms=vms, created=sorted(vms))

    def _keys(self, si, vms) -> dict[str, str]:
        return {name: f"ssh-ed25519 NEWKEY{name}" for name in vms}

    def _health(self, settings, name, say, wait) -> StatusReport:
        self.calls.append("status")
        return StatusReport(NAME, [], 0.1)

    def recover(self, *, confirm=None, **kwargs: Any) -> ops_recover.RecoverResult:
        asked: list[list[str]] = []

        def answer(lines: list[str]) -> bool:
            asked.append(lines)
            return confirm(lines) if confirm else True

        self.asked = asked
        return ops_recover.recover(self.settings, NAME, confirm=answer, **kwargs)

    def runs(self) -> list[tuple[str, str, dict]]:
        return [(c["playbook"], c["limit"], c["extravars_file"]) for c in self.runner.calls]

    def store(self) -> StateStore:
        return StateStore.open_readonly(self.settings.db_path)


@pytest.fixture
def env(viocli_env, monkeypatch, example):
    return lambda **kwargs: RecoverEnv(monkeypatch, example, **kwargs)


# --- plans ----------------------------------------------------------------------------------------
def test_a_rebuilt_node_is_deployed_with_the_nodes_sharing_its_groups(env) -> None:
    from viocli.ops.configure import existing_deployment

    dep, _ = existing_deployment(env().settings, None, NAME, "recover")  # vio-prod, as the command finds it
    run = plans.recover(dep, ["database02"])
    assert (run.playbook, run.limit, run.extravars) == (
        "deploy.yml",
        "database01:database02:database03",
        {"viocli_action": "deploy"},
    )
    assert plans.recover(dep, ["controller01"]).limit == "controller01:controller02"
    assert plans.recover(dep, ["loadbalancer02"]).limit == "loadbalancer01:loadbalancer02"
    assert plans.recover(dep, ["compute01", "loadbalancer01"]).limit == (
        "loadbalancer01:loadbalancer02:compute01:compute02"
    )
    with pytest.raises(BadInput, match="nosuch is not a node of deployment vio-prod"):
        plans.recover(dep, ["nosuch"])


# --- what to recover ------------------------------------------------------------------------------
def test_roles_as_viocli_show_names_them_and_a_did_you_mean(env) -> None:
    assert selection.role_group("DB") == "database"
    assert selection.role_group("database") == "database"  # the group names work too
    assert selection.role_group("LoadBalancer") == "loadbalancer"
    assert selection.role_group("ComputeDriver") == "compute"
    with pytest.raises(BadInput, match="did you mean Controller") as error:
        selection.role_group("Controler")
    assert error.value.exit_code == 2


def test_an_unknown_node_is_bad_input_and_changes_nothing(env) -> None:
    e = env()
    with pytest.raises(BadInput, match="-n databse02: deployment vio-prod has no such node; did you mean database02"):
        e.recover(nodes=["databse02"])
    assert e.calls == [] and e.runner.calls == []


def test_a_lost_database_node_rejoins_from_the_survivors(env) -> None:
    e = env(missing=["database02"])
    result = e.recover(nodes=["database02"])
    assert e.asked == []  # its VM is gone: nothing to confirm
    assert [c for c in e.calls if c[0] in ("destroy", "clone")] == [("clone", ["database02"])]
    assert e.runs() == [("deploy.yml", "database01:database02:database03", {"viocli_action": "deploy"})]
    assert [r.node for r in result.recovered] == ["database02"] and result.restored is None
    store = e.store()
    try:
        nodes = {n.name: n for n in store.nodes(NAME)}
        assert nodes["database02"].status == "running" and nodes["database02"].vm_id == "vm-new-database02"
        last = store.operations(NAME)[0]
        assert last.command == "recover database02" and last.result == "succeeded"
        assert last.message.startswith("database02 (its VM is missing from vCenter) rebuilt in")
    finally:
        store.close()
    known = (e.settings.deployment_dir(NAME) / "known_hosts").read_text()
    assert "NEWKEYdatabase02" in known and known.count("OLDKEY") == 2


def test_a_healthy_node_is_only_rebuilt_after_a_yes(env) -> None:
    e = env()
    with pytest.raises(Refused, match="recover cancelled; nothing was changed"):
        e.recover(nodes=["controller01"], confirm=lambda lines: False)
    assert any("controller01 looks healthy" in line for line in e.asked[0])
    assert not [c for c in e.calls if c[0] in ("destroy", "clone")] and e.runner.calls == []
    e.recover(nodes=["controller01"], force=True)
    assert [c for c in e.calls if c[0] in ("destroy", "clone")] == [
        ("destroy", "controller01 (VM vio-prod-Controller-0)"),
        ("clone", ["controller01"]),
    ]


def test_two_lost_database_nodes_make_the_survivor_primary_again_first(env) -> None:
    e = env(missing=["database01", "database02"], galera={"database03": _status("Initialized", "non-Primary", 42)})
    e.recover(nodes=["database01", "database02"])
    steps = [c for c in e.calls if c[0] in ("destroy", "clone", "ssh")]
    assert steps[0][:2] == ("ssh", "database03") and "pc.bootstrap=YES" in steps[0][2]
    assert [c for c in e.calls if c[0] == "clone"] == [("clone", ["database01"]), ("clone", ["database02"])]
    assert [limit for _, limit, _ in e.runs()] == ["database01:database02:database03"] * 2


def test_the_whole_database_role_refuses_without_a_backup_and_names_the_flags(env) -> None:
    e = env(missing=DATABASES)
    store = StateStore.open_writable(e.settings.db_path)
    backup = store.start_backup(NAME, "vio_os_db_20261201000000", "openstack_db", "10.0.0.5:/vio_backup")
    store.finish_backup(backup, "complete")
    store.close()
    with pytest.raises(Refused, match="-dn BACKUP_NAME -nfs NFS_VOLUME") as error:
        e.recover(roles=["DB"])
    assert "vio_os_db_20261201000000 on 10.0.0.5:/vio_backup" in (error.value.hint or "")
    assert error.value.exit_code == 4
    assert not [c for c in e.calls if c[0] in ("destroy", "clone")] and e.runner.calls == []


def test_a_backup_named_for_one_lost_node_is_not_used(env) -> None:
    e = env(missing=["database03"])
    said: list[str] = []
    e.recover(nodes=["database03"], backup_name="vio_os_db_20261201000000", say=said.append)
    assert any("not needed and not used" in line for line in said)
    assert e.runs() == [("deploy.yml", "database01:database02:database03", {"viocli_action": "deploy"})]


def test_survivors_that_cannot_give_the_data_are_refused(env) -> None:
    e = env(missing=["database02"], down=["database01"], galera={"database03": ""})
    with pytest.raises(Refused, match="cannot give the new ones their data") as error:
        e.recover(nodes=["database02"])
    assert "recover -r DB -dn BACKUP_NAME -nfs NFS_VOLUME" in (error.value.hint or "")


def test_an_interrupted_recover_keeps_the_new_vm_and_finishes(env) -> None:
    e = env()
    store = StateStore.open_writable(e.settings.db_path)
    store.update_node(NAME, "loadbalancer01", status="redeploying")
    store.close()
    said: list[str] = []
    e.recover(nodes=["loadbalancer01"], say=said.append)
    assert e.asked == []  # an unfinished recover is not a healthy node
    assert any("an earlier recover of it did not finish" in line for line in said)
    assert [c for c in e.calls if c[0] in ("destroy", "clone")] == [("clone", ["loadbalancer01"])]
    assert e.runs() == [("deploy.yml", "loadbalancer01:loadbalancer02", {"viocli_action": "deploy"})]


def test_the_only_controller_says_what_goes_down_and_how_long_it_took() -> None:
    from datetime import UTC, datetime

    history = [
        SimpleNamespace(command="recover controller01", result="succeeded", started_at="2026-12-01T10:00:00+00:00",
                        ended_at="2026-12-01T10:06:00+00:00"),
    ]  # fmt: skip
    store = SimpleNamespace(operations=lambda deployment, limit: history)
    assert ops_recover.last_duration(store, "vio-tiny", "controller01") == "its last recover took 6 min"
    history[0] = SimpleNamespace(command="deployment create", result="succeeded",
                                 started_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC).isoformat(),
                                 ended_at=datetime(2026, 12, 1, 9, 1, 20, tzinfo=UTC).isoformat())  # fmt: skip
    assert ops_recover.last_duration(store, "vio-tiny", "controller01") == "creating the deployment took 80 s"


def test_a_new_host_key_replaces_only_the_nodes_line(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    write_known_hosts(known, {"a": (["10.0.0.1"], "ssh-ed25519 AAA"), "b": (["10.0.0.2"], "ssh-ed25519 BBB")})
    assert replace_host_key(known, "b", ["10.0.0.2"], "ssh-ed25519 CCC") is True
    lines = [line for line in known.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["10.0.0.1,a ssh-ed25519 AAA", "10.0.0.2,b ssh-ed25519 CCC"]
    assert replace_host_key(known, "b", ["10.0.0.2"], "ssh-ed25519 CCC") is False
    assert oct(known.stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(os.geteuid() != 0, reason="recover needs root")
def test_the_cli_takes_vios_names_after_one_flag(viocli_env, monkeypatch) -> None:
    from click.testing import CliRunner

    from viocli.cli.main import cli

    seen: list[dict] = []

    def fake(settings, name, **kwargs):
        seen.append({k: kwargs[k] for k in ("nodes", "roles", "backup_name", "nfs_volume", "force")})
        return ops_recover.RecoverResult("vio-prod")

    monkeypatch.setattr(ops_recover, "recover", fake)
    ok = CliRunner().invoke(cli, ["recover", "-n", "database01", "database02", "-f"])
    assert ok.exit_code == 0, ok.output
    assert seen[-1] == {
        "nodes": ("database01", "database02"),
        "roles": (),
        "backup_name": None,
        "nfs_volume": None,
        "force": True,
    }
    ok = CliRunner().invoke(cli, ["recover", "-r", "DB", "-dn", "vio_os_db_1", "-nfs", "h:/x"])
    assert ok.exit_code == 0 and seen[-1]["roles"] == ("DB",) and seen[-1]["nfs_volume"] == "h:/x"
    both = CliRunner().invoke(cli, ["recover", "-n", "database01", "-r", "DB", "controller01"])
    assert both.exit_code == 2 and "give -n or -r before each name" in both.stderr


def test_every_ssh_master_of_the_deployment_is_closed(tmp_path: Path) -> None:
    import socket

    from viocli.runner.settings import close_ssh_masters

    control = tmp_path / "cp"
    control.mkdir()
    master = socket.socket(socket.AF_UNIX)
    master.bind(str(control / "0123456789"))  # stands for a master ssh made (not one that answers)
    (control / "notes").write_text("not a socket")
    try:
        assert close_ssh_masters(tmp_path) == 1
    finally:
        master.close()
    assert sorted(p.name for p in control.iterdir()) == ["notes"]
    assert close_ssh_masters(tmp_path / "nothing-here") == 0


def test_recover_closes_the_masters_before_its_deploy(env, monkeypatch) -> None:
    e = env(missing=["database02"])
    monkeypatch.setattr(ops_recover, "close_ssh_masters", lambda work_dir: e.calls.append(("close", work_dir.name)))
    e.recover(nodes=["database02"])
    steps = [c[0] if isinstance(c, tuple) else c for c in e.calls]
    assert steps.index("close") > steps.index("clone") and ("close", NAME) in e.calls
    assert steps.index("close") < steps.index("playbook")
