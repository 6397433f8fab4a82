"""``deployment destroy``: the plan, the typed name, vCenter first and the OMS's state only after it,
with vCenter faked (the vSphere side runs against the simulator in tests/vsphere/test_destroy.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from viocli.cli.main import cli
from viocli.errors import NodesUnreachable, OperationFailed, Refused
from viocli.inventory.load import load_inventory
from viocli.inventory.topology import allocate, resolve_nodes
from viocli.ops import destroy as ops_destroy
from viocli.ops.context import Deployment
from viocli.ops.destroy import RERUN_HINT, Remains, Removed, destroy
from viocli.ops.lifecycle import vcenter_session
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings
from viocli.state.store import BackupRecord, StateStore
from viocli.vsphere.power import NodeVM

NAME = "vio-prod"  # inventory/ha.yml: 9 nodes, folder vio-prod, cluster mgmt-cluster
OTHER = "vio-tiny"
RULES = [f"{NAME}-{role}-anti-affinity" for role in ("controller", "database", "loadbalancer")]


class FakeVCenter:
    """The deployment's remains as vCenter would report them, and what destroy asked to delete."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: Exception | None = None
        self.gone: set[str] = {"compute02"}

    @contextmanager
    def session(self, settings, deployment) -> Iterator[str]:
        self.calls.append("login")
        yield "si"

    def find_remains(self, si, deployment: Deployment, vm_ids) -> Remains:
        self.calls.append("find")
        remains = Remains("DC01", "vio-prod", "mgmt-cluster", folder=SimpleNamespace(), cluster=SimpleNamespace())
        for node in deployment.nodes:
            found = NodeVM(node.name, node.vm_name, SimpleNamespace(), "poweredOn")
            (remains.gone if node.name in self.gone else remains.vms).append(found)
        remains.rules = list(RULES)
        return remains

    def remove_remains(self, si, remains: Remains, *, say) -> Removed:
        self.calls.append("remove")
        if self.fail is not None:
            raise self.fail
        return Removed([v.vm_name for v in remains.vms], remains.rules, remains.folder_name)


def _record(settings, name: str, inventory) -> None:
    """A created deployment: its rows (nodes, an operation, a backup) and its private directory."""
    loaded = load_inventory(inventory)
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment(name, inventory, loaded.model.mode)
    store.record_nodes(name, resolve_nodes(loaded.model, allocate(loaded.model)))
    store.set_deployment_status(name, "running")
    store.finish_operation(store.start_operation(name, "deployment create", "root", 1), "succeeded", 0)
    store.finish_backup(store.start_backup(name, "vio_os_db_20260101000000", "openstack_db", "h:/b"), "complete")
    store.close()
    directory = settings.deployment_dir(name)
    SecretStore(directory).set("vcenter_password", "VcPass-0123456789")
    (directory / "known_hosts").write_text("controller01 ssh-ed25519 AAAA\n")
    (directory / "tls").mkdir()
    (directory / "tls" / "external-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")


class Env:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, example) -> None:
        self.settings = load_settings()
        self.inventory = example("ha")
        _record(self.settings, NAME, self.inventory)
        _record(self.settings, OTHER, example("tiny"))
        store = StateStore.open_writable(self.settings.db_path)
        store.record_backup(  # the OMS's own backup: catalogued under "(oms)", never a deployment's
            BackupRecord(0, "(oms)", "vio_ms_20260101000000", "mgmt_server", "h:/b", "t", "t", "complete", 1, "c", None)
        )
        store.close()
        self.vcenter = FakeVCenter()
        monkeypatch.setattr(ops_destroy, "vcenter_session", self.vcenter.session)
        monkeypatch.setattr(ops_destroy, "find_remains", self.vcenter.find_remains)
        monkeypatch.setattr(ops_destroy, "remove_remains", self.vcenter.remove_remains)

    def rows(self, name: str) -> tuple[bool, int, int, int]:
        """(deployment recorded, nodes, operations, backups) in the state store."""
        store = StateStore.open_readonly(self.settings.db_path)
        try:
            return (
                store.deployment(name) is not None,
                len(store.nodes(name)),
                len(store.operations(name)),
                len(store.backups(name)),
            )
        finally:
            store.close()


@pytest.fixture
def env(viocli_env, example, monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(monkeypatch, example)


def _typing(text: str, shown: list[list[str]]):
    def confirm(lines: list[str], name: str) -> str:
        assert name == NAME
        shown.append(lines)
        return text

    return confirm


def test_the_plan_names_every_vm_the_folder_the_rules_the_state_and_the_backup_advice(env: Env) -> None:
    shown: list[list[str]] = []
    with pytest.raises(Refused):
        destroy(env.settings, NAME, confirm=_typing("", shown))
    (lines,) = shown
    text = "\n".join(lines)
    assert lines[0] == f"deployment {NAME} will be destroyed; this cannot be undone. It deletes:"
    assert "  VM vio-prod-Controller-0     controller01     poweredOn" in lines
    assert "  VM vio-prod-ComputeDriver-1  compute02        already gone" in lines
    assert "  VM folder vio-prod" in lines
    assert f"  DRS rules in cluster mgmt-cluster: {', '.join(RULES)}" in lines
    directory = env.settings.deployment_dir(NAME)
    assert f"  the directory {directory} (the deployment's secrets, PKI/TLS, known_hosts, runner data): " in text
    assert "known_hosts, secrets.yml, tls/" in text
    assert f"its rows in the state store {env.settings.db_path}: the deployment, its 9 nodes" in text
    assert "its 1 backup catalog entries" in text
    assert f"kept: the inventory file {env.inventory} and every backup on NFS" in text
    assert "sudo viocli backup mgmt_server NFS_VOLUME" in lines[-1] and "backup on NFS alone" in lines[-1]


@pytest.mark.parametrize("typed", ["", "vio-pro", "yes", "VIO-PROD"])
def test_anything_but_the_name_cancels_and_changes_nothing(env: Env, typed: str) -> None:
    with pytest.raises(Refused) as refused:
        destroy(env.settings, NAME, confirm=_typing(typed, []))
    assert refused.value.exit_code == 4
    assert f"deployment destroy of {NAME} cancelled" in refused.value.message
    assert "nothing was changed" in refused.value.message
    assert env.vcenter.calls == ["login", "find"]
    assert env.rows(NAME) == (True, 9, 2, 1)  # the refused destroy is in the history
    assert (env.settings.deployment_dir(NAME) / "secrets.yml").exists()


def test_a_vcenter_failure_keeps_the_state_and_says_to_run_again(env: Env) -> None:
    env.vcenter.fail = OperationFailed("vSphere task Destroy_Task on vio-prod-DB-0 (database01) failed: NoPermission")
    with pytest.raises(OperationFailed) as failed:
        destroy(env.settings, NAME, confirm=_typing(NAME, []))
    assert "NoPermission" in failed.value.message and failed.value.hint == RERUN_HINT
    assert env.rows(NAME) == (True, 9, 2, 1)
    assert (env.settings.deployment_dir(NAME) / "secrets.yml").exists()
    assert (env.settings.deployment_dir(NAME) / "tls" / "external-ca.pem").exists()


def test_vcenter_not_answering_is_exit_3_and_keeps_the_state(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops_destroy, "vcenter_session", vcenter_session)  # the real one, on a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = yaml.safe_load(env.inventory.read_text())
    data["vcenter"].update(host="127.0.0.1", port=port)
    env.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(NodesUnreachable) as unreachable:
        destroy(env.settings, NAME, confirm=lambda lines, name: pytest.fail("asked"))
    assert unreachable.value.exit_code == 3
    assert f"cannot reach vCenter 127.0.0.1:{port}" in unreachable.value.message
    assert f"nothing of deployment {NAME} was deleted" in unreachable.value.message
    assert env.rows(NAME) == (True, 9, 2, 1)
    assert (env.settings.deployment_dir(NAME) / "secrets.yml").exists()


def test_success_forgets_the_deployment_and_nothing_of_the_others(env: Env) -> None:
    said: list[str] = []
    result = destroy(env.settings, NAME, confirm=_typing(f" {NAME}\n", []), say=said.append)
    assert env.vcenter.calls == ["login", "find", "remove"]
    assert len(result.removed.vms) == 8 and [v.node for v in result.remains.gone] == ["compute02"]
    assert result.forgotten.rows == {"deployments": 1, "nodes": 9, "operations": 2, "backups": 1, "patch_runs": 0}
    assert result.forgotten.directory == env.settings.deployment_dir(NAME)
    assert env.rows(NAME) == (False, 0, 0, 0)
    assert not env.settings.deployment_dir(NAME).exists()
    assert not (env.settings.state_dir / "locks" / f"{NAME}.lock").exists()
    assert said[-1] == f"forgetting deployment {NAME} on this OMS"
    # The other deployment and the OMS's own backups are untouched.
    assert env.rows(OTHER) == (True, 1, 1, 1)
    assert (env.settings.deployment_dir(OTHER) / "secrets.yml").exists()
    store = StateStore.open_readonly(env.settings.db_path)
    assert store.backup_named("vio_ms_20260101000000") is not None
    store.close()


def test_a_directory_left_without_a_deployment_goes_alone(env: Env) -> None:
    destroy(env.settings, NAME, confirm=_typing(NAME, []))
    # An interrupted destroy (or secrets stored before create) left a directory the state store does not know.
    SecretStore(env.settings.deployment_dir(NAME)).set("vcenter_password", "VcPass-0123456789")
    env.vcenter.calls.clear()
    shown: list[list[str]] = []
    result = destroy(env.settings, NAME, confirm=_typing(NAME, shown))
    assert env.vcenter.calls == []
    assert any(line.startswith("in vCenter: nothing (the state store has no deployment vio-prod") for line in shown[0])
    assert result.remains is None and result.removed is None
    assert not env.settings.deployment_dir(NAME).exists()
    assert env.rows(NAME) == (False, 0, 0, 0)


def test_a_deployment_destroyed_meanwhile_is_checked_again_under_the_lock(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ops_destroy.existing_deployment

    def then_another_destroy_finishes(*args: Any) -> Any:
        found = real(*args)
        store = StateStore.open_writable(env.settings.db_path)
        store.forget_deployment(NAME)
        store.close()
        return found

    monkeypatch.setattr(ops_destroy, "existing_deployment", then_another_destroy_finishes)
    with pytest.raises(Refused, match="created or destroyed by another command meanwhile; nothing was changed"):
        destroy(env.settings, NAME, confirm=lambda lines, name: pytest.fail("asked"))
    assert env.vcenter.calls == []
    assert (env.settings.deployment_dir(NAME) / "secrets.yml").exists()


def test_an_unknown_deployment_is_bad_input(env: Env) -> None:
    result = CliRunner().invoke(cli, ["deployment", "destroy", "-d", "vio-prd", "--yes"])
    assert result.exit_code == 2
    assert "deployment 'vio-prd' is not known on this OMS; did you mean vio-prod?" in result.stderr
    assert env.vcenter.calls == []


def test_the_command_asks_for_the_name_and_prints_what_went(env: Env) -> None:
    wrong = CliRunner().invoke(cli, ["deployment", "destroy", "-d", NAME], input="y\n")
    assert wrong.exit_code == 4
    assert "type the deployment's name (vio-prod) to destroy it" in wrong.stderr
    assert f"deployment destroy of {NAME} cancelled ('y' is not its name); nothing was changed" in wrong.stderr
    assert "  VM folder vio-prod" in wrong.stdout
    no_input = CliRunner().invoke(cli, ["deployment", "destroy", "-d", NAME])
    assert no_input.exit_code == 4 and "cancelled (no name typed)" in no_input.stderr
    assert env.rows(NAME)[0]

    result = CliRunner().invoke(cli, ["deployment", "destroy", "-d", NAME, "--force"])
    assert result.exit_code == 0, result.output
    assert "type the deployment's name" not in result.stderr
    done = result.stdout.splitlines()
    start = done.index(f"deployment {NAME} destroyed")
    assert done[start:] == [
        f"deployment {NAME} destroyed",
        "  VMs deleted: " + ", ".join(n for n in _vm_names(env) if n != "vio-prod-ComputeDriver-1"),
        "  VMs already gone: vio-prod-ComputeDriver-1",
        f"  DRS rules deleted: {', '.join(RULES)}",
        "  VM folder deleted: vio-prod",
        "  state store rows deleted: deployments 1, nodes 9, operations 4, backups 1, patch_runs 0",
        f"  directory deleted: {env.settings.deployment_dir(NAME)}",
        f"  kept: the inventory file {env.inventory} and every backup on NFS",
    ]
    assert "viocli: forgetting deployment vio-prod on this OMS" in result.stderr


def _vm_names(env: Env) -> list[str]:
    loaded = load_inventory(env.inventory)
    return [n.vm_name for n in resolve_nodes(loaded.model, allocate(loaded.model))]


def test_the_default_deployment_left_in_the_config_is_pointed_out(env: Env) -> None:
    env.settings.config_file.parent.mkdir(parents=True, exist_ok=True)
    env.settings.config_file.write_text(f"[DEFAULT]\ndeployment = {NAME}\n")
    load_settings.cache_clear()
    result = CliRunner().invoke(cli, ["deployment", "destroy", "-y"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"  note: the default deployment ([DEFAULT] deployment in {env.settings.config_file}) is still {NAME}; "
        "set another: sudo viocli deployment default NAME"
    )
