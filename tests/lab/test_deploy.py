"""``deployment create`` against the lab (the configuration playbooks grow issue by issue).

Provisioning on the simulator, host keys learned from vCenter (so SSH checks them from the start),
the playbooks over SSH, and the idempotence rule: a second run changes nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.lab.oms import oms_env, run_viocli
from viocli.settings import load_settings

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("oms")
    env = oms_env(root)
    up = run_viocli(env, "lab", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    inventories = root / "inventory"
    inventories.mkdir()
    lab_dir = root / "state" / "lab"
    for name in ("lab-tiny.yml", "lab-ha.yml", "custom-lab.yml"):
        text = (REPO / "inventory" / name).read_text().replace("/var/lib/viocli/lab/", f"{lab_dir}/")
        (inventories / name).write_text(text)
    yield env, inventories
    down = run_viocli(env, "lab", "down")
    assert down.returncode == 0, down.stderr


@pytest.fixture
def settings(lab_env, monkeypatch: pytest.MonkeyPatch):
    env, _ = lab_env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    load_settings.cache_clear()
    yield load_settings()
    load_settings.cache_clear()


def test_create_tiny_then_create_again_changes_nothing(settings, lab_env) -> None:
    from viocli.ops.deploy import create
    from viocli.state.store import StateStore

    _, inventories = lab_env
    inventory = inventories / "lab-tiny.yml"
    plans: list[list[str]] = []
    first = create(settings, inventory, confirm=lambda lines: plans.append(lines) or True, say=lambda _t: None)
    assert first.provisioned.created == ["controller01"]
    assert "controller01" in plans[0][1] and "10.203.0.50" in plans[0][1]
    assert first.configured.hosts("failures") == []

    known_hosts = (settings.deployment_dir("vio-lab-tiny") / "known_hosts").read_text()
    assert "10.203.0.50,10.203.1.50,controller01 ssh-ed25519 " in known_hosts
    key = settings.state_dir / "ssh" / "id_ed25519"
    ssh = [
        "ssh", "-i", str(key), "-o", f"UserKnownHostsFile={settings.deployment_dir('vio-lab-tiny') / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@10.203.0.50",
    ]  # fmt: skip
    hosts = subprocess.run([*ssh, "hostname; cat /etc/hosts"], capture_output=True, text=True, check=True).stdout
    assert hosts.splitlines()[0] == "controller01"
    assert "Ansible managed by viocli, do not edit" in hosts
    assert "10.203.0.50\tcontroller01" in hosts

    store = StateStore.open_readonly(settings.db_path)
    (record,) = store.nodes("vio-lab-tiny")
    assert record.vm_id == first.provisioned.vm_ids["controller01"] and record.status == "running"
    assert store.deployment("vio-lab-tiny").status == "running"

    again = create(settings, inventory, confirm=lambda _lines: True, say=lambda _t: None)
    assert again.provisioned.created == [] and again.provisioned.adopted == ["controller01"]
    assert again.configured.changed == 0
    assert [op.result for op in store.operations("vio-lab-tiny")] == ["succeeded", "succeeded"]
    assert json.loads(json.dumps(again.configured.stats))["failures"] == {}


def test_create_ha_galera_and_rabbitmq_clusters_of_three(settings, lab_env) -> None:
    from viocli.ops.deploy import create

    _, inventories = lab_env
    inventory = inventories / "lab-ha.yml"
    first = create(settings, inventory, confirm=lambda _lines: True, say=lambda _t: None)
    assert len(first.provisioned.created) == 9
    known_hosts = settings.deployment_dir("vio-lab-ha") / "known_hosts"
    ssh = [
        "ssh", "-i", str(settings.state_dir / "ssh" / "id_ed25519"), "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
    ]  # fmt: skip
    query = (
        "mysql -N -e \"SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_size','wsrep_local_state_comment');"
        ' SHOW DATABASES;"'
    )
    for address in ("10.203.0.102", "10.203.0.103", "10.203.0.104"):  # database01..03
        out = subprocess.run([*ssh, f"root@{address}", query], capture_output=True, text=True, check=True).stdout
        assert "wsrep_cluster_size\t3" in out and "wsrep_local_state_comment\tSynced" in out
        for database in ("keystone", "glance", "placement", "nova_api", "nova_cell0", "nova", "neutron", "cinder"):
            assert f"\n{database}\n" in f"\n{out}"
    status = subprocess.run(
        [*ssh, "root@10.203.0.104", "rabbitmqctl --quiet cluster_status --formatter json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cluster = json.loads(status)
    assert sorted(cluster["running_nodes"]) == ["rabbit@database01", "rabbit@database02", "rabbit@database03"]
    assert not cluster.get("partitions")
    again = create(settings, inventory, confirm=lambda _lines: True, say=lambda _t: None)
    assert again.provisioned.created == [] and again.configured.changed == 0
