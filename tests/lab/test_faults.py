"""Faults injected the way reality does, on the shared HA deployment (issue 9): every MariaDB killed at
once, a clean stop and start, a rolling `services restart`, a database node cut off from the others,
and the active load balancer powered off through vSphere. Clients record what they saw; each test
asserts on those records and on `deployment status`, and leaves the deployment healthy.

Needs root and the lab.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.lab.clients import ApiClientLoop, RowWriterLoop
from tests.lab.conftest import HA
from tests.lab.oms import (
    DATABASES,
    EXTERNAL_VIP,
    INTERNAL_VIP,
    LOADBALANCERS,
    admin_password,
    check_openstack,
    external_ca,
    netns_of,
    on_node,
    power,
    run_viocli,
    status_json,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

COLLECTORS = {
    "VerifyVMPowerState",
    "VerifyNodeReachable",
    "VerifyTimeSynchronization",
    "VerifyGaleraCluster",
    "VerifyRabbitMQCluster",
    "VerifyMemcached",
    "VerifyHAProxyBackends",
    "VerifyVIPs",
    "VerifyCertificates",
    "VerifyOpenStackAPIs",
    "VerifyNovaComputeServices",
    "VerifyDiskSpace",
}


def _status(env: dict[str, str]) -> dict[str, dict]:
    return {r["collector_name"]: r for r in status_json(env, HA)}


def _assert_healthy(env: dict[str, str], timeout: float = 180) -> None:
    """`deployment status` has no FAILURE, within ``timeout`` (services a fault touched report late:
    nova-compute reports every 10 s and is down after 60 s without a report)."""
    deadline = time.monotonic() + timeout
    while True:
        results = _status(env)
        assert set(results) == COLLECTORS
        failed = {name: r for name, r in results.items() if r["overall_status"] == "FAILURE"}
        if not failed or time.monotonic() > deadline:
            break
        time.sleep(10)
    assert failed == {}, failed


def _viocli_ok(env: dict[str, str], *args: str) -> str:
    result = run_viocli(env, *args, timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _galera(env: dict[str, str]) -> list[dict[str, str]]:
    query = (
        "SHOW GLOBAL STATUS WHERE Variable_name IN "
        "('wsrep_cluster_size','wsrep_cluster_status','wsrep_local_state_comment')"
    )
    states = []
    for address in DATABASES:
        out = on_node(env, HA, address, f'mysql -N -B -e "{query}"')
        states.append(dict(line.split("\t") for line in out.strip().splitlines()))
    return states


def test_status_lists_every_collector_and_is_green_on_a_healthy_deployment(ha) -> None:
    env, _, _ = ha
    started = time.monotonic()
    result = run_viocli(env, "deployment", "status", "-d", HA, "--format", "json", timeout=120)
    print(f"deployment status: {time.monotonic() - started:.1f} s")
    results = json.loads(result.stdout)
    assert {r["collector_name"] for r in results} == COLLECTORS
    for r in results:
        assert {"collector_name", "overall_status", "nodes", "message", "action"} <= set(r)
        assert r["overall_status"] in ("SUCCESS", "WARNING"), r
    assert result.returncode == 0


def test_all_databases_killed_at_once_come_back_with_every_acknowledged_row(ha, writer_account) -> None:
    """systemd restarts a mysqld killed by a signal (Restart=on-abort) and Galera restores its Primary
    component from gvwstate.dat once every member of the last one is back (pc.recovery): `deployment
    start` may find it running already and must then leave it alone; either way no row is lost."""
    env, _, _ = ha
    try:
        with RowWriterLoop(**writer_account) as writer:
            writer.wait_acknowledged(30)
            # kill -9 of mysqld on the three nodes at once, by the pid from its pid file
            kills = [
                subprocess.Popen(
                    [*_ssh(env, address), "kill -9 $(cat /run/mysqld/mysqld.pid)"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for address in DATABASES
            ]
            assert all(k.wait(timeout=60) == 0 for k in kills)
            time.sleep(3)
            _viocli_ok(env, "deployment", "start", "-d", HA)
            writer.wait_acknowledged(10)  # the client writes again through the VIP
        states = _galera(env)
        assert all(s["wsrep_local_state_comment"] == "Synced" for s in states), states
        assert all(s["wsrep_cluster_size"] == "3" for s in states), states
        assert all(s["wsrep_cluster_status"] == "Primary" for s in states), states
        assert writer.missing() == []
    finally:
        _assert_healthy(env)


def test_database_vms_powered_off_at_once_recover_from_the_most_advanced_member(ha, writer_account) -> None:
    """A power cut of every database VM: nothing restarts by itself (Galera is not started at boot);
    `deployment start` powers them on and bootstraps from the highest recovered seqno."""
    env, _, _ = ha
    log = Path(env["VIOCLI_LOG_FILE"])
    logged = log.stat().st_size
    try:
        with RowWriterLoop(**writer_account) as writer:
            writer.wait_acknowledged(30)
            with ThreadPoolExecutor(3) as pool:  # the three power-offs reach vSphere at the same moment
                list(pool.map(lambda vm: power(env, vm, on=False), [f"vio-lab-ha-DB-{i}" for i in range(3)]))
            time.sleep(2)
        _viocli_ok(env, "deployment", "start", "-d", HA)
        with log.open() as text:
            text.seek(logged)
            assert "Galera: bootstrapping from database0" in text.read(), "start did not recover Galera itself"
        states = _galera(env)
        assert all(s["wsrep_local_state_comment"] == "Synced" for s in states), states
        assert all(s["wsrep_cluster_size"] == "3" for s in states), states
        assert writer.missing() == []
    finally:
        _assert_healthy(env)


def test_clean_stop_then_start(ha, writer_account) -> None:
    env, _, _ = ha
    try:
        with RowWriterLoop(**writer_account) as writer:
            writer.wait_acknowledged(30)
        acknowledged = list(writer.acknowledged)
        _viocli_ok(env, "deployment", "stop", "-d", HA, "--force")
        powered = _status(env)["VerifyVMPowerState"]
        assert powered["overall_status"] == "FAILURE" and len(powered["nodes"]) == 9, powered
        _viocli_ok(env, "deployment", "start", "-d", HA)
        check_openstack(env, HA, EXTERNAL_VIP, compute_hosts=2)
        writer.acknowledged = acknowledged
        assert writer.missing() == []
    finally:
        _assert_healthy(env)


def test_services_restart_is_rolling_with_zero_failed_requests(ha, writer_account) -> None:
    env, _, _ = ha
    try:
        client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA))
        with client, RowWriterLoop(**writer_account) as writer:
            _viocli_ok(env, "services", "restart", "-d", HA)
        restarted = time.time()
        assert len(client.records) > 50
        assert client.failures == [], client.failures[:5]
        assert writer.missing() == []
        _computes_report_after(env, restarted)
    finally:
        _assert_healthy(env)


def test_a_cut_off_database_node_is_reported_and_rejoins(ha) -> None:
    env, _, _ = ha
    netns = netns_of(env, "database03")
    queues = _queues(env)
    try:
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "eth0", "down"], check=True)
        # Every status run from here on must name database03 (RabbitMQ itself notices the lost peer only
        # after its net_ticktime, and pause_minority then pauses database03).
        for _ in range(3):
            results = _status(env)
            for collector in ("VerifyRabbitMQCluster", "VerifyNodeReachable", "VerifyGaleraCluster"):
                assert results[collector]["overall_status"] == "FAILURE", results[collector]
                assert "database03" in results[collector]["nodes"], results[collector]
            time.sleep(20)
    finally:
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "eth0", "up"], check=True)
    deadline = time.monotonic() + 180
    while _status(env)["VerifyRabbitMQCluster"]["overall_status"] != "SUCCESS":
        if time.monotonic() > deadline:
            _viocli_ok(env, "services", "restart", "-d", HA, "--service", "rabbitmq", "--node", "database03")
            break
        time.sleep(10)
    _assert_healthy(env)
    assert _queues(env) >= queues


def test_active_load_balancer_powered_off_moves_the_vips_and_comes_back_as_standby(ha, tmp_path) -> None:
    env, _, _ = ha
    holders = [lb for lb in LOADBALANCERS if f" {EXTERNAL_VIP}/" in on_node(env, HA, lb, "ip -o -4 addr show")]
    assert len(holders) == 1
    active = holders[0]
    name = f"loadbalancer0{LOADBALANCERS.index(active) + 1}"
    vm = f"vio-lab-ha-LoadBalancer-{LOADBALANCERS.index(active)}"
    standby = next(lb for lb in LOADBALANCERS if lb != active)
    client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA), pause=0.1)
    try:
        with client:
            time.sleep(2)
            power(env, vm, on=False)
            cut = time.time()
            deadline = time.monotonic() + 60
            while not any(r.ok and r.at > cut + 1 for r in client.records) and time.monotonic() < deadline:
                time.sleep(0.5)
        back = min((r.at for r in client.records if r.ok and r.at > cut), default=None)
        assert back is not None, "the API never answered again through the VIP"
        # The outage as the client saw it: the longest time between two answered requests around it.
        answered = sorted(r.at for r in client.records if r.ok)
        gap = max((b - a for a, b in itertools.pairwise(answered)), default=0.0)
        print(f"API unreachable through the external VIP for at most {gap:.1f} s after the power-off")
        addresses = on_node(env, HA, standby, "ip -o -4 addr show")
        assert f" {EXTERNAL_VIP}/" in addresses and f" {INTERNAL_VIP}/" in addresses
        results = _status(env)
        assert name in results["VerifyVMPowerState"]["nodes"]
        assert results["VerifyVMPowerState"]["overall_status"] == "FAILURE"
        # getlogs while it is off: the bundle completes (exit 0), and the summary and manifest name it.
        shown = _viocli_ok(env, "deployment", "getlogs", "-d", HA, "--role", "LoadBalancer", "-o", str(tmp_path))
        assert re.search(rf"^{name}\s+LoadBalancer\s+powered off\s+0\b", shown, re.MULTILINE), shown
        (bundle,) = tmp_path.glob("viocli-logs-*.tar.gz")
        with tarfile.open(bundle) as tar:
            top = bundle.name.removesuffix(".tar.gz")
            manifest = json.load(tar.extractfile(f"{top}/manifest.json"))
        standby_name = f"loadbalancer0{LOADBALANCERS.index(standby) + 1}"
        assert manifest["nodes"][name]["status"] == "powered off", manifest["nodes"]
        assert manifest["nodes"][name]["power_state"] == "poweredOff"
        assert manifest["nodes"][standby_name]["status"] == "collected"
        assert any(f["path"] == f"{standby_name}/commands/haproxy-stats.txt" for f in manifest["files"])
    finally:
        power(env, vm, on=True)
        _viocli_ok(env, "deployment", "start", "-d", HA)
    for vip in (EXTERNAL_VIP, INTERNAL_VIP):
        held = [lb for lb in LOADBALANCERS if f" {vip}/" in on_node(env, HA, lb, "ip -o -4 addr show")]
        assert held == [standby], (vip, held)  # the one that came back is the standby
    _assert_healthy(env)


def _computes_report_after(env: dict[str, str], moment: float, timeout: float = 180) -> None:
    """Every nova-compute reports its state again after ``moment`` (a record still "up" from before a
    restart would hide a nova-compute whose service thread died)."""
    from datetime import datetime

    from tests.lab.oms import openstack

    conn = openstack(env, HA, EXTERNAL_VIP)
    deadline = time.monotonic() + timeout
    while True:
        computes = [s for s in conn.compute.services() if s.binary == "nova-compute"]
        fresh = [s for s in computes if s.updated_at and datetime.fromisoformat(s.updated_at).timestamp() > moment]
        if (computes and len(fresh) == len(computes)) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert computes and len(fresh) == len(computes), [(s.host, s.state, s.updated_at) for s in computes]


# A process's own queues (oslo.messaging's `<topic>_fanout_<uuid>` and `reply_<uuid>`) go with its
# connection and come back under a new id when it reconnects: only the named queues must survive.
_PER_PROCESS = re.compile(r"_fanout_[0-9a-f]{32}$|^reply_[0-9a-f]{32}$")


def _queues(env: dict[str, str]) -> set[str]:
    """The named queues of the OpenStack services (those that outlive any one process's connection)."""
    out = on_node(env, HA, DATABASES[0], "rabbitmqctl --quiet list_queues --formatter json name")
    return {q["name"] for q in json.loads(out) if not _PER_PROCESS.search(q["name"])}


def _ssh(env: dict[str, str], address: str) -> list[str]:
    from tests.lab.oms import ssh_command

    return ssh_command(env, HA, address)
