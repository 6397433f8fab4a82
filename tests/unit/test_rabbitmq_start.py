"""What the rabbitmq role reads from RabbitMQ (playbooks/roles/rabbitmq/filter_plugins/viocli_rabbitmq.py):
whether a node failed to start because its peers are gone (then, only when no member could start,
`deployment start` force boots one), and whether a cluster status shows every member running without
partitions. The role's rabbitmq.conf bounds the wait for peers to about 2 minutes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.playbook_code import load

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "rabbitmq"
PLUGIN = ROLE / "filter_plugins" / "viocli_rabbitmq.py"
NODES = ["rabbit@database01", "rabbit@database02", "rabbit@database03"]

# As RabbitMQ 3.10 logs a boot that gave up waiting for its peers (rabbit_table, rabbit_prelaunch_errors).
PEERS_GONE_LOG = """\
2026-01-01 10:00:00.000000+00:00 [info] <0.230.0> Waiting for Mnesia tables for 10000 ms, 11 retries left
2026-01-01 10:00:10.000000+00:00 [warning] <0.230.0> Error while waiting for Mnesia tables: \
{timeout_waiting_for_tables,['rabbit@database02','rabbit@database03'],[rabbit_user,rabbit_vhost]}
BOOT FAILED
===========
Timeout contacting cluster nodes: ['rabbit@database02','rabbit@database03'].

BACKGROUND
==========

This cluster node was shut down while other nodes were still running.
"""


@pytest.fixture(scope="module")
def rabbitmq():
    return load(PLUGIN)


def test_a_node_whose_peers_are_gone_is_recognised(rabbitmq) -> None:
    failure = rabbitmq.rabbitmq_boot_failure(PEERS_GONE_LOG)
    assert failure["peers_gone"] is True
    assert failure["peers"] == ["rabbit@database02", "rabbit@database03"]
    assert "rabbit@database02, rabbit@database03" in failure["error"]


def test_the_peers_are_read_from_the_wait_when_the_boot_banner_is_missing(rabbitmq) -> None:
    log = PEERS_GONE_LOG.split("BOOT FAILED")[0]
    assert rabbitmq.rabbitmq_boot_failure(log)["peers"] == ["rabbit@database02", "rabbit@database03"]


def test_another_failure_is_not_a_reason_to_force_boot(rabbitmq) -> None:
    log = (
        "2026-01-01 10:00:00.000000+00:00 [info] <0.1.0> Starting RabbitMQ\n"
        "2026-01-01 10:00:01.000000+00:00 [error] <0.230.0> Failed to start Ranch listener: eaddrinuse\n"
    )
    failure = rabbitmq.rabbitmq_boot_failure(log)
    assert failure == {"peers_gone": False, "peers": [], "error": "Failed to start Ranch listener: eaddrinuse"}
    assert rabbitmq.rabbitmq_boot_failure("")["error"] == "nothing in its logs"


def test_a_whole_cluster_has_no_problem(rabbitmq) -> None:
    status = {"running_nodes": NODES, "disk_nodes": NODES, "partitions": {}, "alarms": []}
    assert rabbitmq.rabbitmq_cluster_problems(json.dumps(status), NODES) == []


def test_missing_members_and_partitions_are_named(rabbitmq) -> None:
    status = {"running_nodes": NODES[:2], "partitions": {"rabbit@database01": ["rabbit@database03"]}}
    assert rabbitmq.rabbitmq_cluster_problems(json.dumps(status), NODES) == [
        "rabbit@database03 not running",
        "rabbit@database01 partitioned from rabbit@database03",
    ]
    assert rabbitmq.rabbitmq_cluster_problems("Error: unable to perform", NODES)[0].startswith("unreadable")


def test_the_wait_for_peers_is_bounded_to_about_two_minutes() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    wait = defaults["rabbitmq_table_loading_retry_timeout"] * defaults["rabbitmq_table_loading_retry_limit"] / 1000
    assert 60 <= wait <= 150
    template = (ROLE / "templates" / "rabbitmq.conf.j2").read_text()
    assert "mnesia_table_loading_retry_timeout = {{ rabbitmq_table_loading_retry_timeout | int }}" in template
    assert "mnesia_table_loading_retry_limit = {{ rabbitmq_table_loading_retry_limit | int }}" in template
