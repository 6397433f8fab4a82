"""The verb contract of the playbooks (kolla's shape), checked on the shipped tree.

- every playbook a plan in viocli/ops/plans.py names ships in playbooks/;
- every role's tasks/main.yml is the one include of ``{{ viocli_action }}.yml``;
- every role a playbook runs has the action file of every ``viocli_action`` its plans pass it;
- every unit a role starts is described once, in playbooks/group_vars/all/services.yml.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import yaml

from viocli.ops import plans

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
LIBRARY_ROLES = {"service"}  # task files included with tasks_from by the service roles; no actions


def _plan_playbooks() -> set[str]:
    """Every ``*.yml`` string literal in plans.py: the playbooks its plans run."""
    tree = ast.parse(inspect.getsource(plans))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".yml")
    }


def _plan_actions(deployment) -> dict[str, set[str]]:
    """playbook -> the viocli_action values the plans pass to it, from every run they make."""
    runs = [
        plans.deploy(deployment),
        plans.configure(deployment),
        plans.rotate_secrets(deployment, ["nova_db_password"]),
        plans.start(deployment),
        plans.stop(deployment),
        plans.cert_update(deployment, "0A1B"),
        plans.restore_db(deployment, "database01", "/var/lib/mysql-restore"),
        *(plans.patch(deployment, action, ["controller01"], {}) for action in plans.PATCH_ACTIONS),
        *(plans.services(deployment, action) for action in plans.SERVICE_PLAYBOOKS),
    ]
    named = {run.playbook for run in runs}
    assert named == _plan_playbooks(), "a plan is missing from this test: add it to the runs above"
    actions: dict[str, set[str]] = {}
    for run in runs:
        actions.setdefault(run.playbook, set()).add(run.extravars["viocli_action"])
    return actions


@pytest.fixture
def deployment(viocli_env, example):
    from viocli.ops.context import resolve_deployment
    from viocli.secrets.store import SecretStore
    from viocli.settings import load_settings

    settings = load_settings()
    SecretStore(settings.deployment_dir("vio-prod")).set("vcenter_password", "VcPass-0123456789")
    return resolve_deployment(settings, None, example("ha"), None)


def _roles_of(playbook: Path) -> set[str]:
    """The roles a playbook runs, following import_playbook."""
    roles: set[str] = set()
    for play in yaml.safe_load(playbook.read_text()) or []:
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            roles |= _roles_of(playbook.parent / imported)
        for role in play.get("roles", []):
            roles.add(role["role"] if isinstance(role, dict) else role)
    return roles


def test_every_playbook_a_plan_names_ships() -> None:
    named = _plan_playbooks()
    assert named, "plans.py names no playbook"
    missing = sorted(name for name in named if not (PLAYBOOKS / name).is_file())
    assert not missing, f"plans name playbooks that do not ship: {missing}"


def test_the_check_catches_a_plan_for_a_playbook_that_does_not_ship(monkeypatch: pytest.MonkeyPatch) -> None:
    source = inspect.getsource(plans) + '\n\ndef later(d):\n    return PlaybookRun("not_yet.yml")\n'
    monkeypatch.setattr(inspect, "getsource", lambda _module: source)
    with pytest.raises(AssertionError, match=r"not_yet\.yml"):
        test_every_playbook_a_plan_names_ships()


@pytest.mark.parametrize("role", sorted(p.name for p in (PLAYBOOKS / "roles").iterdir() if p.name not in LIBRARY_ROLES))
def test_role_main_is_the_action_include(role: str) -> None:
    tasks = yaml.safe_load((PLAYBOOKS / "roles" / role / "tasks" / "main.yml").read_text())
    assert len(tasks) == 1, f"{role}: tasks/main.yml must hold only the action include"
    task = tasks[0]
    assert task.get("ansible.builtin.include_tasks") == "{{ viocli_action }}.yml"
    assert "always" in task.get("tags", [])


def test_every_role_has_the_actions_its_playbooks_run(deployment) -> None:
    missing = []
    for playbook, actions in _plan_actions(deployment).items():
        for role in _roles_of(PLAYBOOKS / playbook):
            for action in actions:
                if not (PLAYBOOKS / "roles" / role / "tasks" / f"{action}.yml").is_file():
                    missing.append(f"{playbook}: role {role} has no tasks/{action}.yml")
    assert not missing, missing


def test_every_started_unit_has_one_descriptor() -> None:
    services = yaml.safe_load((PLAYBOOKS / "group_vars" / "all" / "services.yml").read_text())["viocli_services"]
    owners: dict[str, str] = {}
    for name, service in services.items():
        for unit in service["units"]:
            assert unit["name"] not in owners, f"unit {unit['name']} described by {owners.get(unit['name'])} and {name}"
            owners[unit["name"]] = name
            assert all(path.startswith("/") for path in unit.get("files", [])), unit
    # No role starts a service by hand: they all go through the service role's viocli_units.
    for task_file in (PLAYBOOKS / "roles").glob("*/tasks/*.yml"):
        text = task_file.read_text()
        assert "/etc/init.d/" not in text, f"{task_file}: services are systemd units (viocli_units)"
        assert "start-stop-daemon" not in text, task_file
