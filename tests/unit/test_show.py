"""``viocli show``: VIO's table, JSON, and ``-p`` with every secret masked."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from viocli.cli.main import cli
from viocli.inventory.load import load_inventory
from viocli.ops.context import resolve_deployment
from viocli.secrets.catalog import GENERATED
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings
from viocli.state.store import StateStore

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"

HA_TABLE = """\
hostname        role           vm name                   ip
--------------  -------------  ------------------------  -----------
compute01       ComputeDriver  vio-prod-ComputeDriver-0  10.20.0.107
compute02       ComputeDriver  vio-prod-ComputeDriver-1  10.20.0.108
controller01    Controller     vio-prod-Controller-0     10.20.0.105
controller02    Controller     vio-prod-Controller-1     10.20.0.106
database01      DB             vio-prod-DB-0             10.20.0.102
database02      DB             vio-prod-DB-1             10.20.0.103
database03      DB             vio-prod-DB-2             10.20.0.104
loadbalancer01  LoadBalancer   vio-prod-LoadBalancer-0   10.20.0.100
loadbalancer02  LoadBalancer   vio-prod-LoadBalancer-1   10.20.0.101
"""


def test_show_prints_vio_table(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["show", "-i", str(EXAMPLES / "ha.yml")])
    assert result.exit_code == 0, result.output
    assert result.stdout == HA_TABLE


def test_show_json_carries_state(viocli_env) -> None:
    settings = load_settings()
    store = StateStore.open_writable(settings.db_path)
    deployment = resolve_deployment(settings, store, EXAMPLES / "tiny.yml", None)
    store.register_deployment(deployment.name, EXAMPLES / "tiny.yml", "tiny")
    store.record_nodes(deployment.name, deployment.nodes)
    store.update_node(deployment.name, "controller01", vm_id="vm-1001", status="running")
    # No -i: the deployment's recorded inventory is used (the only deployment on this OMS).
    result = CliRunner().invoke(cli, ["show", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["hostname"] == "controller01"
    assert row["vm_id"] == "vm-1001" and row["status"] == "running"
    assert row["ip"] == "10.40.0.100" and row["api_ip"] == "192.168.70.100"


def test_show_without_inventory_or_deployment_says_what_to_do(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["show"])
    assert result.exit_code == 2
    assert "pass the inventory file with -i FILE" in result.stderr


def test_show_unknown_deployment(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["show", "-d", "nope"])
    assert result.exit_code == 2
    assert "deployment 'nope' is not known on this OMS" in result.stderr


def test_show_p_masks_every_secret_even_for_root(viocli_env) -> None:
    loaded = load_inventory(EXAMPLES / "ha.yml")
    store = SecretStore(load_settings().deployment_dir(loaded.name))
    values = store.ensure_generated()
    store.set("vcenter_password", "Vc-Secret-Password-123")
    result = CliRunner().invoke(cli, ["show", "-p", "-i", str(EXAMPLES / "ha.yml")])
    assert result.exit_code == 0, result.output
    rendered = yaml.safe_load(result.stdout)
    all_vars = rendered["all"]["vars"]
    for name in GENERATED:
        assert all_vars[name] == "********"
    assert all_vars["vcenter_password"] == "********"
    for value in [*values.values(), "Vc-Secret-Password-123"]:
        for text in value if isinstance(value, list) else [value]:
            assert text not in result.output
    # The resolved inventory: hosts with addresses, groups, and merged group vars.
    assert rendered["all"]["hosts"]["database01"]["ansible_host"] == "10.20.0.102"
    assert sorted(rendered["all"]["children"]["database"]["hosts"]) == ["database01", "database02", "database03"]
    assert all_vars["internal_vip"] == "10.20.0.90"
    assert all_vars["openstack_api_workers"] == 4  # the HA mode default
    assert all_vars["controller_vcpus"] == 8  # the inventory's value


def test_show_p_json(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["show", "-p", "--format", "json", "-i", str(EXAMPLES / "tiny.yml")])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert sorted(data["all"]["children"]) == ["compute", "controller", "database", "loadbalancer"]
    assert data["all"]["children"]["compute"]["hosts"] == {"controller01": None}


def test_show_creates_no_state(viocli_env) -> None:
    for args in (["show", "-i", str(EXAMPLES / "tiny.yml")], ["show", "-p", "-i", str(EXAMPLES / "tiny.yml")]):
        assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, ["show", "-d", "vio-tiny"]).exit_code == 2
    assert not (viocli_env / "state").exists()


def test_show_unknown_deployment_did_you_mean(viocli_env) -> None:
    settings = load_settings()
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment("vio-tiny", EXAMPLES / "tiny.yml", "tiny")
    store.close()
    for args in (["show", "-d", "vio-tyni"], ["-d", "vio-tyni", "show"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        assert "did you mean vio-tiny?" in result.stderr
        assert "known deployments: vio-tiny" in result.stderr


def test_show_empty_deployment_is_not_the_default(viocli_env) -> None:
    settings = load_settings()
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment("vio-tiny", EXAMPLES / "tiny.yml", "tiny")
    store.close()
    assert CliRunner().invoke(cli, ["show"]).exit_code == 0  # the only deployment
    result = CliRunner().invoke(cli, ["show", "-d", ""])
    assert result.exit_code == 2
    assert "-d '' is not a valid deployment name" in result.stderr
