"""``secrets rotate``: which secrets may rotate, what is stored, and the exact run that pushes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from viocli.errors import BadInput, OperationFailed, Refused
from viocli.ops import rotate as rotate_module
from viocli.ops.rotate import rotate_secrets, rotation_targets
from viocli.secrets.catalog import GENERATED, NOT_ROTATABLE, ROTATABLE, SERVICE_CREDENTIALS
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings
from viocli.state.store import StateStore

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"


@pytest.fixture
def deployment(viocli_env):
    """A running tiny deployment with its secrets generated and the vCenter password stored."""
    settings = load_settings()
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment("vio-tiny", EXAMPLES / "tiny.yml", "tiny")
    store.set_deployment_status("vio-tiny", "running")
    store.close()
    secrets = SecretStore(settings.deployment_dir("vio-tiny"))
    secrets.ensure_generated()
    secrets.set("vcenter_password", "VcPass-Rotate-0123")
    return settings, secrets


@pytest.fixture
def runs(monkeypatch):
    """Record the runs rotate asks for instead of running Ansible."""
    made = []

    class Result:
        changed = 7

    def fake_run(settings, deployment, run, **kwargs):
        made.append((deployment.name, run, SecretStore(settings.deployment_dir(deployment.name)).load()))
        return Result()

    monkeypatch.setattr(rotate_module, "run_ansible", fake_run)
    return made


def test_rotate_stores_new_values_then_runs_configure_once(deployment, runs) -> None:
    settings, secrets = deployment
    before = secrets.load()
    result = rotate_secrets(
        settings, None, "vio-tiny", ["nova_db_password", "keystone_admin_password", "nova_rabbitmq_password"]
    )
    after = secrets.load()
    rotated = ["keystone_admin_password", "nova_db_password", "nova_rabbitmq_password"]
    assert result.rotated == rotated
    assert all(after[name] != before[name] and len(after[name]) >= 32 for name in rotated)
    assert {k: v for k, v in after.items() if k not in rotated} == {k: v for k, v in before.items() if k not in rotated}
    [(name, run, seen)] = runs
    assert name == "vio-tiny"
    assert run.playbook == "configure.yml" and run.tags == () and run.limit is None
    assert dict(run.extravars) == {"viocli_action": "configure", "viocli_rotated_secrets": rotated}
    assert seen == after, "the new values are stored before the push starts"


def test_all_services_rotates_every_service_credential(deployment, runs) -> None:
    settings, secrets = deployment
    before = secrets.load()
    result = rotate_secrets(settings, None, "vio-tiny", [], all_services=True)
    assert result.rotated == sorted(SERVICE_CREDENTIALS)
    assert {"nova_db_password", "glance_keystone_password", "heat_rabbitmq_password"} <= set(result.rotated)
    after = secrets.load()
    assert after["keystone_admin_password"] == before["keystone_admin_password"]
    assert after["keystone_fernet_keys"] == before["keystone_fernet_keys"]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("vcenter_password", "change it there"),
        ("keystone_fernet_keys", "staging a new key"),
        ("rabbitmq_erlang_cookie", "stopped at once"),
        ("heat_auth_encryption_key", "unreadable"),
        ("nova_db_pasword", "did you mean nova_db_password?"),
    ],
)
def test_refused_names_change_nothing(deployment, runs, name: str, says: str) -> None:
    settings, secrets = deployment
    before = secrets.path.read_bytes()
    with pytest.raises(BadInput) as caught:
        rotate_secrets(settings, None, "vio-tiny", ["nova_db_password", name])
    assert says in f"{caught.value.message} {caught.value.hint}"
    assert secrets.path.read_bytes() == before
    assert runs == []


def test_nothing_named_is_bad_input() -> None:
    with pytest.raises(BadInput, match="--all-services"):
        rotation_targets([], all_services=False)


def test_every_secret_is_either_rotatable_or_says_why_not() -> None:
    assert set(GENERATED) == set(ROTATABLE) | set(NOT_ROTATABLE)
    assert set(SERVICE_CREDENTIALS) <= set(ROTATABLE)


def test_a_failed_push_keeps_the_new_values_and_says_how_to_finish(deployment, monkeypatch) -> None:
    settings, secrets = deployment

    def failing_run(*_args, **_kwargs):
        raise OperationFailed("configure.yml on vio-tiny failed on controller01")

    monkeypatch.setattr(rotate_module, "run_ansible", failing_run)
    before = secrets.load()["nova_db_password"]
    with pytest.raises(OperationFailed) as caught:
        rotate_secrets(settings, None, "vio-tiny", ["nova_db_password"])
    assert secrets.load()["nova_db_password"] != before
    assert "sudo viocli deployment configure -d vio-tiny" in caught.value.hint
    history = StateStore.open_readonly(settings.db_path)
    assert [op.result for op in history.operations("vio-tiny")][-1:] == ["failed"]


def test_rotate_refuses_a_deployment_that_is_not_running(deployment, runs) -> None:
    settings, _ = deployment
    store = StateStore.open_writable(settings.db_path)
    store.set_deployment_status("vio-tiny", "provisioning")
    store.close()
    with pytest.raises(Refused, match="needs its nodes up"):
        rotate_secrets(settings, None, "vio-tiny", ["nova_db_password"])
    assert runs == []


def test_unknown_deployment_on_a_new_oms_is_bad_input(viocli_env) -> None:
    with pytest.raises(BadInput, match="not known on this OMS"):
        rotate_secrets(load_settings(), None, "nosuch", ["nova_db_password"])
    assert not (viocli_env / "state").exists()


def test_cli_rotate_reports_what_it_rotated(deployment, monkeypatch) -> None:
    from click.testing import CliRunner

    from viocli.cli.main import cli

    class Run:
        changed, elapsed = 12, 3.0

    monkeypatch.setattr(rotate_module, "run_ansible", lambda *_args, **_kwargs: Run())
    result = CliRunner().invoke(cli, ["secrets", "rotate", "nova_db_password", "-d", "vio-tiny"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "rotated 1 secret of vio-tiny: nova_db_password; pushed with 12 changes in 3 s"
    _, secrets = deployment
    assert secrets.load()["nova_db_password"] not in result.output


def test_cli_rotate_bad_input_and_not_root(deployment, monkeypatch) -> None:
    import os

    from click.testing import CliRunner

    from viocli.cli.main import cli

    _, secrets = deployment
    before = secrets.path.read_bytes()
    for args, code in (
        (["secrets", "rotate", "-d", "vio-tiny"], 2),
        (["secrets", "rotate", "vcenter_password", "-d", "vio-tiny"], 2),
        (["secrets", "rotate", "nova_db_password", "-d", "vio-tyni"], 2),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.startswith("viocli: "), result.stderr
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert CliRunner().invoke(cli, ["secrets", "rotate", "--all-services", "-d", "vio-tiny"]).exit_code == 4
    assert secrets.path.read_bytes() == before
