"""``deployment create`` of HA against the lab, checked as an operator would check it.

The HA deployment from nothing through the CLI (the session's shared one; tiny has test_tiny.py).
A real OpenStack client (openstacksdk) gets a token through the external VIP over TLS, lists the
catalog and sees the nova-compute services; Galera has 3 Synced members, RabbitMQ 3 running nodes
and each VIP sits on exactly one load balancer; a second create changes nothing.
"""

from __future__ import annotations

import json

import pytest

from tests.lab.conftest import HA, create
from tests.lab.oms import check_openstack, on_node

pytestmark = [pytest.mark.lab, pytest.mark.slow]


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

    check_openstack(env, HA, "10.203.1.90", compute_hosts=2)


def test_ha_create_again_changes_nothing(ha) -> None:
    env, inventories, _ = ha
    output = create(env, inventories / "lab-ha.yml")
    assert "(0 created), 0 changes" in output
