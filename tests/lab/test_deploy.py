"""``deployment create`` and ``configure`` against the lab, checked as an operator would check them.

Tiny and HA deployments from nothing through the CLI. Then a real OpenStack client (openstacksdk) gets
a token through the external VIP over TLS, lists the catalog and sees the nova-compute services; in HA,
Galera has 3 Synced members, RabbitMQ 3 running nodes and each VIP sits on exactly one load balancer.
A second configure changes nothing and restarts nothing (every service process keeps its pid and start
time), and a custom.yml change reaches the rendered file and restarts only the services that read it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from tests.lab.oms import daemons, oms_env, on_node, openstack, run_viocli

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TINY = "vio-lab-tiny"
HA = "vio-lab-ha"
CATALOG_TYPES = {"identity", "image", "placement", "compute", "network", "volumev3", "orchestration", "cloudformation"}


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
    # tiny gets a custom.yml of its own: its test edits it
    tiny = inventories / "lab-tiny.yml"
    tiny.write_text(tiny.read_text().replace("custom_file: custom-lab.yml", "custom_file: custom-tiny.yml"))
    (inventories / "custom-tiny.yml").write_text((inventories / "custom-lab.yml").read_text())
    yield env, inventories
    down = run_viocli(env, "lab", "down")
    assert down.returncode == 0, down.stderr


def _create(env: dict[str, str], inventory: Path) -> str:
    result = run_viocli(env, "deployment", "create", "-i", str(inventory), "--yes", timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _configure(env: dict[str, str], deployment: str) -> int:
    result = run_viocli(env, "deployment", "configure", "-d", deployment, timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr
    changed = re.search(r"configure changed (\d+) things", result.stdout)
    assert changed, result.stdout
    return int(changed.group(1))


@pytest.fixture(scope="module")
def tiny(lab_env):
    env, inventories = lab_env
    return env, inventories, _create(env, inventories / "lab-tiny.yml")


@pytest.fixture(scope="module")
def ha(lab_env):
    env, inventories = lab_env
    return env, inventories, _create(env, inventories / "lab-ha.yml")


def _check_openstack(env: dict[str, str], deployment: str, external_vip: str, compute_hosts: int) -> None:
    """What an operator checks first with a client: token, catalog, compute services."""
    conn = openstack(env, deployment, external_vip)
    assert conn.authorize()  # a token, through the external VIP, TLS verified against the deployment's CA
    services = {service.id: service.type for service in conn.identity.services()}
    assert set(services.values()) >= CATALOG_TYPES
    public = [e for e in conn.identity.endpoints() if e.interface == "public"]
    assert {services[e.service_id] for e in public} >= CATALOG_TYPES
    assert all(e.url.startswith(f"https://{external_vip}:") for e in public)
    deadline = time.monotonic() + 300
    while True:
        computes = [s for s in conn.compute.services() if s.binary == "nova-compute"]
        if (len(computes) == compute_hosts and all(s.state == "up" for s in computes)) or time.monotonic() > deadline:
            break
        time.sleep(5)  # a compute service reports every 10 s
    assert len(computes) == compute_hosts and all(s.state == "up" for s in computes), computes
    binaries = {s.binary for s in conn.compute.services()}
    assert {"nova-scheduler", "nova-conductor", "nova-compute"} <= binaries
    data = b"viocli lab image " * 4096  # through glance to the vCenter datastore and back
    image = conn.image.create_image(name="e2e", data=data, disk_format="raw", container_format="bare")
    assert conn.image.get_image(image.id).status == "active"
    assert conn.image.download_image(image).content == data
    conn.image.delete_image(image)
    assert conn.network.find_network("no-such-network") is None
    assert list(conn.block_storage.volumes()) == []
    assert list(conn.orchestration.stacks()) == []


def test_tiny_from_nothing_serves_openstack_through_the_external_vip(tiny) -> None:
    env, _, output = tiny
    assert "deployment vio-lab-tiny is running" in output
    hosts = on_node(env, TINY, "10.203.0.50", "hostname; cat /etc/hosts")
    assert hosts.splitlines()[0] == "controller01"
    assert "Ansible managed by viocli, do not edit" in hosts
    _check_openstack(env, TINY, "10.203.1.40", compute_hosts=2)


def test_tiny_second_configure_changes_nothing_and_restarts_nothing(tiny) -> None:
    env, _, _ = tiny
    before = daemons(env, TINY, "10.203.0.50")
    assert any("nova-scheduler" in args for _, _, args in before)
    assert _configure(env, TINY) == 0
    assert daemons(env, TINY, "10.203.0.50") == before


def test_tiny_custom_change_restarts_only_the_services_that_read_it(tiny) -> None:
    env, inventories, _ = tiny
    custom = inventories / "custom-tiny.yml"
    data = yaml.safe_load(custom.read_text())
    data["nova_scheduler_default_filters"] = ["AvailabilityZoneFilter", "ComputeFilter", "ImagePropertiesFilter"]
    data["cpu_allocation_ratio"] = 3.0
    custom.write_text(yaml.safe_dump(data))
    before = daemons(env, TINY, "10.203.0.50")
    assert _configure(env, TINY) > 0
    after = daemons(env, TINY, "10.203.0.50")

    scheduler = on_node(env, TINY, "10.203.0.50", "grep -h '^enabled_filters' /etc/nova/nova-scheduler.conf")
    assert "AvailabilityZoneFilter,ComputeFilter,ImagePropertiesFilter" in scheduler.replace(" ", "")
    ratios = on_node(env, TINY, "10.203.0.50", "grep -h '^cpu_allocation_ratio' /etc/nova/nova-compute-*.conf")
    assert ratios.split() == ["cpu_allocation_ratio", "=", "3.0"] * 2

    restarted = {args for _, _, args in before - after}
    assert restarted, "nothing restarted"
    assert all("nova-scheduler" in args or "nova-compute" in args for args in restarted), restarted
    assert any("nova-scheduler" in args for args in restarted)
    assert sum("nova-compute" in args for args in restarted) == 2
    assert _configure(env, TINY) == 0


def test_ha_from_nothing_clusters_vips_and_openstack(ha) -> None:
    env, _, output = ha
    assert "deployment vio-lab-ha is running: 9 VMs" in output
    query = (
        "mysql -N -e \"SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_size','wsrep_local_state_comment');"
        ' SHOW DATABASES;"'
    )
    for address in ("10.203.0.102", "10.203.0.103", "10.203.0.104"):  # database01..03
        out = on_node(env, HA, address, query)
        assert "wsrep_cluster_size\t3" in out and "wsrep_local_state_comment\tSynced" in out
        for database in ("keystone", "glance", "placement", "nova_api", "nova_cell0", "nova", "neutron", "cinder"):
            assert f"\n{database}\n" in f"\n{out}"
    cluster = json.loads(on_node(env, HA, "10.203.0.104", "rabbitmqctl --quiet cluster_status --formatter json"))
    assert sorted(cluster["running_nodes"]) == ["rabbit@database01", "rabbit@database02", "rabbit@database03"]
    assert not cluster.get("partitions")

    addresses = [on_node(env, HA, lb, "ip -o -4 addr show") for lb in ("10.203.0.100", "10.203.0.101")]
    for vip in ("10.203.0.90", "10.203.1.90"):
        assert sum(f" {vip}/" in out for out in addresses) == 1, vip

    _check_openstack(env, HA, "10.203.1.90", compute_hosts=2)


def test_ha_create_again_changes_nothing(ha) -> None:
    env, inventories, _ = ha
    output = _create(env, inventories / "lab-ha.yml")
    assert "(0 created), 0 changes" in output
