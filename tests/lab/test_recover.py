"""``viocli recover`` on the shared HA deployment (issue 11): a VM destroyed through vSphere, as a dead
disk or a deleted VM leaves it, comes back as newly deployed while clients keep writing rows through
the internal VIP or asking the APIs through the external VIP; the clients' records are the evidence.
Each test leaves the deployment healthy.

Needs root and the lab.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from tests.lab.clients import ApiClientLoop, RowWriterLoop
from tests.lab.conftest import HA, configure
from tests.lab.oms import (
    DATABASES,
    EXTERNAL_VIP,
    INTERNAL_VIP,
    LOADBALANCERS,
    admin_password,
    check_openstack,
    external_ca,
    lab_vcenter,
    on_node,
    recorded_certificate,
    run_viocli,
    served_sha1,
    status_json,
)
from tests.lab.test_faults import _assert_healthy, _galera
from viocli.backup.galera import checksum_command, parse_checksums

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

EXPORT = "10.203.0.1:/vio_backup"
# Tables the running services keep writing to (heartbeats, the resources a hypervisor reports).
HEARTBEAT_TABLES = {"services", "service", "compute_nodes", "agents"}
DB_VMS = {"database01": "vio-lab-ha-DB-0", "database02": "vio-lab-ha-DB-1", "database03": "vio-lab-ha-DB-2"}
# HAProxy marks a dead backend down after fall x inter (roles/haproxy/defaults: 3 x 2 s); requests in
# flight then, and the client's own timeout, bound the failures a lost controller may cause.
DETECTION_WINDOW = 2 * 3 + 30


def destroy(env: dict[str, str], *vm_names: str) -> float:
    """Power off and delete VMs through vSphere, as a failed disk or an operator's mistake leaves them."""
    from pyVmomi import vim

    from viocli.vsphere.objects import find
    from viocli.vsphere.tasks import wait_for_tasks

    si = lab_vcenter(env)
    vms = [find(si, vim.VirtualMachine, name) for name in vm_names]
    wait_for_tasks(si, [vm.PowerOffVM_Task() for vm in vms])
    at = time.time()
    wait_for_tasks(si, [vm.Destroy_Task() for vm in vms])
    return at


def _recover(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess:
    result = run_viocli(env, "recover", "-d", HA, *args, timeout=3600)
    assert result.returncode == code, result.stdout + result.stderr
    return result


def _rows(env: dict[str, str], sql: str, *args: str) -> list[dict]:
    """Rows of the OMS's state store, read-only, as a user of `sqlite3` would read them."""
    db = sqlite3.connect(f"file:{Path(env['VIOCLI_STATE_DIR']) / 'viocli.db'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, args).fetchall()]
    finally:
        db.close()


def _history(env: dict[str, str]) -> list[dict]:
    """The deployment's operation history, newest first."""
    return _rows(env, "SELECT * FROM operations WHERE deployment=? ORDER BY id DESC", HA)


def _node_status(env: dict[str, str], node: str) -> str | None:
    rows = _rows(env, "SELECT status FROM nodes WHERE deployment=? AND name=?", HA, node)
    return rows[0]["status"] if rows else None


def _known_key(env: dict[str, str], node: str) -> str:
    known = Path(env["VIOCLI_STATE_DIR"]) / "deployments" / HA / "known_hosts"
    return next(line for line in known.read_text().splitlines() if f",{node} " in line)


def _rabbitmq_running(env: dict[str, str], address: str) -> list[str]:
    status = json.loads(on_node(env, HA, address, "rabbitmqctl --quiet cluster_status --formatter json"))
    return sorted(status["running_nodes"])


def _vip_holders(env: dict[str, str]) -> dict[str, list[str]]:
    return {
        vip: [lb for lb in LOADBALANCERS if f" {vip}/" in on_node(env, HA, lb, "ip -o -4 addr show")]
        for vip in (EXTERNAL_VIP, INTERNAL_VIP)
    }


def test_a_destroyed_database_node_is_recovered_under_write_load_with_every_acknowledged_row(
    ha, writer_account
) -> None:
    env, _, _ = ha
    old_key = _known_key(env, "database02")
    writer = RowWriterLoop(**writer_account)
    try:
        with writer:
            writer.wait_acknowledged(20)
            destroy(env, DB_VMS["database02"])
            started = time.time()
            out = _recover(env, "-n", "database02").stdout
            ended = time.time()
            writer.wait_acknowledged(20)
        assert "database02: recovered in" in out and "its VM is missing from vCenter" in out
        during = [at for at in writer.acknowledged_at if started < at < ended]
        print(
            f"recover -n database02: {ended - started:.0f} s; {len(during)} rows acknowledged meanwhile, "
            f"{len(writer.errors)} failed writes"
        )
        assert writer.missing() == []
        assert during, "no write was acknowledged while database02 was recovered"
        for state in _galera(env):
            assert state == {
                "wsrep_cluster_size": "3",
                "wsrep_cluster_status": "Primary",
                "wsrep_local_state_comment": "Synced",
            }
        expected = [f"rabbit@database0{i}" for i in (1, 2, 3)]
        assert _rabbitmq_running(env, DATABASES[0]) == expected == _rabbitmq_running(env, DATABASES[1])
        # The new VM's host key replaced the old one; SSH above checked it.
        assert _known_key(env, "database02") != old_key
        last = _history(env)[0]
        assert last["command"] == "recover database02" and last["result"] == "succeeded"
        assert "database02 (its VM is missing from vCenter) rebuilt in" in last["message"]
    finally:
        _assert_healthy(env)


def test_a_destroyed_controller_is_recovered_while_the_apis_answer_from_the_other(ha) -> None:
    env, _, _ = ha
    client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA), pause=0.1)
    try:
        with client:
            time.sleep(2)
            lost = destroy(env, "vio-lab-ha-Controller-0")
            started = time.time()
            _recover(env, "-n", "controller01")
            ended = time.time()
            time.sleep(2)
        failures = client.failures
        late = [r for r in failures if r.at > lost + DETECTION_WINDOW]
        answered = sorted(r.at for r in client.records if r.ok)
        gap = max((b - a for a, b in itertools.pairwise(answered)), default=0.0)
        print(
            f"recover -n controller01: {ended - started:.0f} s; {len(client.records)} requests, "
            f"{len(failures)} failed (all within {DETECTION_WINDOW} s of the loss: {not late}); "
            f"longest gap between answers {gap:.1f} s"
        )
        assert late == [], late[:5]
        assert [r for r in client.records if r.ok and r.at > ended - 1]
        backends = {r["collector_name"]: r for r in status_json(env, HA)}["VerifyHAProxyBackends"]
        assert backends["overall_status"] == "SUCCESS", backends
        # Newly deployed: nothing is left to apply to what recover ran on, the node and its group's peers.
        assert configure(env, HA, "-l", "controller01,controller02") == 0
    finally:
        _assert_healthy(env)


def test_the_load_balancer_holding_the_vips_is_recovered_even_when_viocli_is_killed_midway(ha) -> None:
    env, _, _ = ha
    holders = _vip_holders(env)
    active = holders[EXTERNAL_VIP][0]
    index = LOADBALANCERS.index(active)
    node = f"loadbalancer0{index + 1}"
    try:
        destroy(env, f"vio-lab-ha-LoadBalancer-{index}")
        # viocli is killed once the new VM exists and the deploy runs: a VM left half-made.
        process = subprocess.Popen(
            [sys.executable, "-m", "viocli", "recover", "-d", HA, "-n", node],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 600
        while _node_status(env, node) != "redeploying" and process.poll() is None:
            assert time.monotonic() < deadline, "recover never got to its new VM"
            time.sleep(0.5)
        time.sleep(5)  # into the deploy playbook
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, process.stdout.read() if process.stdout else ""
        assert _node_status(env, node) == "redeploying"
        out = _recover(env, "-n", node)
        assert "an earlier recover of it did not finish" in out.stdout + out.stderr
        history = _history(env)
        assert [h["result"] for h in history[:2]] == ["succeeded", "interrupted"]
        assert _node_status(env, node) == "running"
        held = _vip_holders(env)
        assert len(held[EXTERNAL_VIP]) == 1 and held[INTERNAL_VIP] == held[EXTERNAL_VIP], held
        # it serves the certificate the deployment records (an operator's, after tests/lab/test_certificates.py)
        recorded = recorded_certificate(env, HA).fingerprint(hashes.SHA1()).hex().upper()
        assert {served_sha1(env, HA, lb) for lb in LOADBALANCERS} == {recorded}
    finally:
        _assert_healthy(env)


def test_the_whole_database_role_needs_a_backup_and_comes_back_from_it(ha) -> None:
    env, _, _ = ha
    name = run_viocli(env, "backup", "openstack_db", EXPORT, "-d", HA).stdout.split()[1]
    manifest = json.loads(
        (Path(env["VIOCLI_STATE_DIR"]) / "lab" / "nfs" / "export" / name / "manifest.json").read_text()
    )
    try:
        destroy(env, *DB_VMS.values())
        refused = _recover(env, "-r", "DB", code=4)
        said = refused.stdout + refused.stderr
        assert "-dn BACKUP_NAME -nfs NFS_VOLUME" in said and name in said, said
        out = _recover(env, "-r", "DB", "-dn", name, "-nfs", EXPORT, "--force").stdout
        assert f"database restored from {name}" in out
        # viocli compared every table before the services started; they have since written their
        # heartbeats (service and agent rows): every other table is still exactly the backup's.
        found = parse_checksums(on_node(env, HA, DATABASES[0], checksum_command()))
        backed_up = manifest["details"]["tables"]
        assert set(found) == set(backed_up)
        live = {t for t in found if t.rsplit(".", 1)[1] in HEARTBEAT_TABLES}
        assert {t: found[t] for t in set(found) - live} == {t: backed_up[t] for t in set(found) - live}
        check_openstack(env, HA, EXTERNAL_VIP, compute_hosts=2)
    finally:
        _assert_healthy(env)
