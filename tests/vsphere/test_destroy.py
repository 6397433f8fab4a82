"""``deployment destroy`` against the vCenter simulator: every VM, the DRS rules and the folder go, a second
run finds nothing, and nothing that is not the deployment's is ever deleted; the removal steps of
``viocli.vsphere.remove`` one by one."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from viocli.cli.main import cli
from viocli.ops.destroy import find_remains, remove_remains, rule_names
from viocli.settings import load_settings
from viocli.state.store import StateStore
from viocli.vsphere.objects import find
from viocli.vsphere.power import find_vms
from viocli.vsphere.remove import destroy_vm, remove_folder, remove_rules
from viocli.vsphere.tasks import wait_for_tasks

pytestmark = pytest.mark.vsphere

NAME = "vio-lab-ha"
RULES = [f"{NAME}-{role}-anti-affinity" for role in ("controller", "database", "loadbalancer")]


def _cluster(si: Any) -> Any:
    from pyVmomi import vim

    return find(si, vim.ClusterComputeResource, "vio-mgmt")


def _rules(si: Any) -> list[str]:
    return sorted(rule.name for rule in _cluster(si).configurationEx.rule or [])


def _folder(si: Any, name: str = NAME) -> Any:
    from pyVmomi import vim

    datacenter = find(si, vim.Datacenter, "vio-dc")
    return next((c for c in datacenter.vmFolder.childEntity if isinstance(c, vim.Folder) and c.name == name), None)


def _vm_names(si: Any) -> set[str]:
    from pyVmomi import vim

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        return {vm.name for vm in view.view}
    finally:
        view.Destroy()


def _clone_template(si: Any, folder: Any, name: str) -> Any:
    """A VM that is not the deployment's: a plain clone of the template into ``folder``."""
    from pyVmomi import vim

    template = find(si, vim.VirtualMachine, "vio-template")
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=_cluster(si).resourcePool), powerOn=False)
    (vm,) = wait_for_tasks(si, [template.CloneVM_Task(folder=folder, name=name, spec=spec)])
    return vm


def test_remains_go_vms_rules_and_folder_and_a_second_run_finds_nothing(deployed) -> None:
    si, deployment, vm_ids = deployed
    names = sorted(n.vm_name for n in deployment.nodes)
    assert set(names) <= _vm_names(si) and set(RULES) <= set(_rules(si))

    remains = find_remains(si, deployment, vm_ids)
    assert sorted(v.vm_name for v in remains.vms) == names
    assert {v.power_state for v in remains.vms} == {"poweredOn"}
    assert remains.gone == [] and remains.strangers == [] and remains.others == []
    assert remains.rules == RULES == sorted(rule_names(NAME)) and remains.folder is not None

    said: list[str] = []
    removed = remove_remains(si, remains, say=said.append)
    assert sorted(removed.vms) == names
    assert removed.rules == RULES and removed.folder == NAME and removed.kept == []
    assert not set(names) & _vm_names(si)
    assert not set(RULES) & set(_rules(si))
    assert _folder(si) is None
    assert "deleting VM vio-lab-ha-DB-1 (database02)" in said

    again = find_remains(si, deployment, vm_ids)
    assert again.vms == [] and again.rules == [] and again.folder is None
    assert sorted(v.node for v in again.gone) == sorted(vm_ids)
    nothing = remove_remains(si, again, say=lambda text: pytest.fail(f"said {text!r}"))
    assert (nothing.vms, nothing.rules, nothing.folder, nothing.kept) == ([], [], None, [])


def test_a_vm_that_is_not_the_deployments_stays_and_so_does_its_folder(deployed) -> None:
    si, deployment, vm_ids = deployed
    stranger = _clone_template(si, _folder(si), "someone-elses-vm")
    # database02's VM was deleted and another VM took its name outside the folder, never recorded.
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    assert destroy_vm(si, found["database02"].vm, label="database02")
    from pyVmomi import vim

    namesake = _clone_template(si, find(si, vim.Datacenter, "vio-dc").vmFolder, "vio-lab-ha-DB-1")
    vm_ids = {**vm_ids, "database02": None}

    remains = find_remains(si, deployment, vm_ids)
    assert remains.others == ["someone-elses-vm"]
    assert [v.vm_name for v in remains.strangers] == ["vio-lab-ha-DB-1"] and remains.gone == []
    assert len(remains.vms) == 8 and "vio-lab-ha-DB-1" not in {v.vm_name for v in remains.vms}

    removed = remove_remains(si, remains)
    assert len(removed.vms) == 8 and removed.rules == RULES
    assert removed.folder is None and removed.kept == ["someone-elses-vm"]
    assert _vm_names(si) >= {"someone-elses-vm", "vio-lab-ha-DB-1"}
    assert stranger.parent._moId == _folder(si)._moId and namesake.name == "vio-lab-ha-DB-1"


def test_destroy_vm_powers_off_and_deletes_then_reports_a_vm_already_gone(deployed) -> None:
    si, deployment, vm_ids = deployed
    vm = find_vms(si, "vio-dc", deployment.nodes, vm_ids)["controller01"].vm
    assert str(vm.runtime.powerState) == "poweredOn"
    assert destroy_vm(si, vm, label="controller01") is True
    assert "vio-lab-ha-Controller-0" not in _vm_names(si)
    assert destroy_vm(si, vm, label="controller01") is False  # the same object, deleted already


def test_remove_rules_deletes_only_the_named_ones_that_exist(deployed) -> None:
    si, _deployment, _vm_ids = deployed
    cluster = _cluster(si)
    before = set(_rules(si))
    assert remove_rules(si, cluster, [RULES[0], "no-such-rule"]) == [RULES[0]]
    assert set(_rules(si)) == before - {RULES[0]}
    assert remove_rules(si, cluster, RULES) == RULES[1:]
    assert remove_rules(si, cluster, RULES) == []


def test_remove_folder_keeps_a_folder_that_holds_anything(deployed) -> None:
    si, _deployment, _vm_ids = deployed
    folder = _folder(si)
    held = sorted(child.name for child in folder.childEntity)
    assert len(held) == 9
    assert remove_folder(si, folder) == held
    assert _folder(si) is not None

    empty = _folder(si).CreateFolder("empty")
    assert remove_folder(si, empty) == []
    assert remove_folder(si, empty) == []  # gone already
    assert [c.name for c in _folder(si).childEntity if c.name == "empty"] == []


def test_the_command_destroys_a_provisioned_deployment_and_forgets_it(deployed) -> None:
    si, deployment, vm_ids = deployed
    settings = load_settings()
    # An earlier destroy was interrupted after deleting one VM.
    found = find_vms(si, "vio-dc", deployment.nodes, vm_ids)
    destroy_vm(si, found["compute01"].vm, label="compute01")

    cancelled = CliRunner().invoke(cli, ["deployment", "destroy", "-d", NAME], input="vio-lab\n")
    assert cancelled.exit_code == 4, cancelled.output
    assert "cancelled ('vio-lab' is not its name); nothing was changed" in cancelled.stderr
    assert "already gone" in cancelled.stdout and "vio-lab-ha-DB-1" in cancelled.stdout
    assert len(set(n.vm_name for n in deployment.nodes) & _vm_names(si)) == 8

    result = CliRunner().invoke(cli, ["deployment", "destroy", "-d", NAME], input=f"{NAME}\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"deployment {NAME} destroyed" in lines
    assert f"  DRS rules deleted: {', '.join(RULES)}" in lines
    assert f"  VM folder deleted: {NAME}" in lines
    assert "  VMs already gone: vio-lab-ha-ComputeDriver-0" in lines
    # operations 2: the cancelled destroy too
    assert "  state store rows deleted: deployments 1, nodes 9, operations 2, backups 0, patch_runs 0" in lines
    assert not {n.vm_name for n in deployment.nodes} & _vm_names(si)
    assert _folder(si) is None and not set(RULES) & set(_rules(si))
    store = StateStore.open_readonly(settings.db_path)
    assert store.deployment(NAME) is None and store.nodes(NAME) == [] and store.operations(NAME) == []
    store.close()
    assert not settings.deployment_dir(NAME).exists()
    assert not (settings.state_dir / "locks" / f"{NAME}.lock").exists()
