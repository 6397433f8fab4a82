"""The tiny deployment (one node holding every role) on the shared lab: create, no-op configure, custom.yml,
backup and restore."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.lab.conftest import TINY, configure, create
from tests.lab.oms import check_openstack, daemons, on_node, on_node_run, run_viocli
from viocli.backup.galera import checksum_command, parse_checksums

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny(lab_env):
    env, inventories = lab_env
    return env, inventories, create(env, inventories / "lab-tiny.yml")


def test_tiny_from_nothing_serves_openstack_through_the_external_vip(tiny) -> None:
    env, _, output = tiny
    assert "deployment vio-lab-tiny is running" in output
    hosts = on_node(env, TINY, "10.203.0.50", "hostname; cat /etc/hosts")
    assert hosts.splitlines()[0] == "controller01"
    assert "Ansible managed by viocli, do not edit" in hosts
    check_openstack(env, TINY, "10.203.1.40", compute_hosts=2)


def test_tiny_custom_change_restarts_only_the_services_that_read_it_and_a_second_run_nothing(tiny) -> None:
    env, inventories, _ = tiny
    custom = inventories / "custom-tiny.yml"
    data = yaml.safe_load(custom.read_text())
    data["nova_scheduler_default_filters"] = ["AvailabilityZoneFilter", "ComputeFilter", "ImagePropertiesFilter"]
    data["cpu_allocation_ratio"] = 3.0
    data["mariadb_max_connections"] = 900  # the only Galera node restarts: it must bootstrap again
    custom.write_text(yaml.safe_dump(data))
    before = daemons(env, TINY, "10.203.0.50")
    assert configure(env, TINY) > 0
    after = daemons(env, TINY, "10.203.0.50")

    scheduler = on_node(env, TINY, "10.203.0.50", "grep -h '^enabled_filters' /etc/nova/nova-scheduler.conf")
    assert "AvailabilityZoneFilter,ComputeFilter,ImagePropertiesFilter" in scheduler.replace(" ", "")
    ratios = on_node(env, TINY, "10.203.0.50", "grep -h '^cpu_allocation_ratio' /etc/nova/nova-compute-*.conf")
    assert ratios.split() == ["cpu_allocation_ratio", "=", "3.0"] * 2

    connections = on_node(env, TINY, "10.203.0.50", 'mysql -N -B -e "SELECT @@max_connections"')
    assert connections.strip() == "900"

    restarted = {args for _, _, args in before - after}
    assert restarted, "nothing restarted"
    assert all(any(name in args for name in ("nova-scheduler", "nova-compute", "mariadbd")) for args in restarted), (
        restarted
    )
    assert any("mariadbd" in args for args in restarted)
    assert any("nova-scheduler" in args for args in restarted)
    assert sum("nova-compute" in args for args in restarted) == 2
    # Run the roles of the changed settings again: nothing changes and nothing restarts (that a whole
    # configure changes nothing is HA's create-again test; here it would cost CI 40 s more).
    settled = daemons(env, TINY, "10.203.0.50")
    assert configure(env, TINY, "-t", "mariadb,nova") == 0
    assert daemons(env, TINY, "10.203.0.50") == settled


def test_tiny_backup_then_restore_gives_back_its_tables(tiny) -> None:
    """One Galera node: it is held still for the backup, and the restore bootstraps it alone."""
    env, _, _ = tiny
    node = "10.203.0.50"
    sql = (
        "CREATE DATABASE IF NOT EXISTS viocli_tiny;\nUSE viocli_tiny;\n"
        "CREATE OR REPLACE TABLE t (id INT PRIMARY KEY, v CHAR(64)) ENGINE=InnoDB;\n"
        "INSERT INTO t SELECT seq, SHA2(seq, 256) FROM seq_1_to_20000;\n"
    )
    assert on_node_run(env, TINY, node, "mysql --batch", stdin=sql).returncode == 0
    made = run_viocli(env, "backup", "openstack_db", "-d", TINY)
    assert made.returncode == 0, made.stderr
    name = made.stdout.split()[1]
    tables = json.loads((Path(env["VIOCLI_STATE_DIR"]) / "lab/nfs/export" / name / "manifest.json").read_text())[
        "details"
    ]["tables"]
    assert tables["viocli_tiny.t"]["rows"] == 20000
    changed = "DELETE FROM viocli_tiny.t WHERE id > 10000;\nCREATE DATABASE viocli_after_backup;\n"
    assert on_node_run(env, TINY, node, "mysql --batch", stdin=changed).returncode == 0

    restored = run_viocli(env, "restore", "openstack_db", name, "-d", TINY, "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"{len(tables)} tables match the backup's checksums" in restored.stdout
    assert parse_checksums(on_node(env, TINY, node, checksum_command()))["viocli_tiny.t"] == tables["viocli_tiny.t"]
    assert "viocli_after_backup" not in on_node(env, TINY, node, "mysql -N -B -e 'SHOW DATABASES'")
    check_openstack(env, TINY, "10.203.1.40", compute_hosts=2)


def test_tiny_recover_of_its_only_controller_warns_then_destroy_leaves_nothing_behind(tiny, tmp_path) -> None:
    """Last of the module: the deployment is gone afterwards."""
    import sqlite3

    from pyVmomi import vim

    from tests.lab.oms import lab_vcenter

    env, _, _ = tiny
    # Its only node holds the only database member: rebuilding it needs a backup.
    refused = run_viocli(env, "recover", "-d", TINY, "-n", "controller01")
    assert refused.returncode == 4 and "-dn BACKUP_NAME -nfs NFS_VOLUME" in refused.stderr, refused.stderr
    backup = run_viocli(env, "backup", "openstack_db", "10.203.0.1:/vio_backup", "-d", TINY)
    assert backup.returncode == 0, backup.stderr
    name = backup.stdout.split()[1]
    # Healthy and the only controller: recover says what goes down and how long, and asks; no answer
    # cancels it and nothing changes.
    asked = run_viocli(env, "recover", "-d", TINY, "-n", "controller01", "-dn", name, "-nfs", "10.203.0.1:/vio_backup")
    said = asked.stdout + asked.stderr
    assert asked.returncode != 0, said
    assert "controller01 is the only controller of vio-lab-tiny" in said and "creating the deployment took" in said
    assert "controller01 looks healthy" in said and f"comes back from {name}" in said
    assert on_node(env, TINY, "10.203.0.50", "hostname").strip() == "controller01"  # the same VM, untouched

    # Its support bundle: the one node holds every role, so it gives every role's diagnostics.
    logs = run_viocli(env, "deployment", "getlogs", "-d", TINY, "--node", "controller01", "-o", str(tmp_path))
    assert logs.returncode == 0, logs.stdout + logs.stderr
    (bundle,) = tmp_path.glob(f"viocli-logs-{TINY}-*.tar.gz")
    with tarfile.open(bundle) as tar:
        top = bundle.name.removesuffix(".tar.gz")
        galera = tar.extractfile(f"{top}/controller01/commands/galera-status.txt").read().decode()
        assert "wsrep_cluster_size\t1" in galera, galera
        stats = tar.extractfile(f"{top}/controller01/commands/haproxy-stats.txt").read().decode()
        assert stats.startswith("# pxname,svname,"), stats[:200]
        assert json.load(tar.extractfile(f"{top}/manifest.json"))["nodes"]["controller01"]["status"] == "collected"

    other = Path(env["VIOCLI_STATE_DIR"]) / "deployments" / "vio-lab-ha" / "known_hosts"
    other_there = other.exists()  # the HA deployment sharing the lab, when the session made it
    gone = run_viocli(env, "deployment", "destroy", "-d", TINY, "--yes")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "deployment vio-lab-tiny destroyed" in gone.stdout

    si = lab_vcenter(env)
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ManagedEntity], True)
    try:
        names = [entity.name for entity in view.view]
        rules = [
            rule.name
            for entity in view.view
            if isinstance(entity, vim.ClusterComputeResource)
            for rule in entity.configurationEx.rule or []
        ]
    finally:
        view.Destroy()
    assert not [n for n in names if n.startswith(TINY)], names
    assert not [r for r in rules if r.startswith(TINY)], rules
    state = Path(env["VIOCLI_STATE_DIR"])
    assert not (state / "deployments" / TINY).exists()
    db = sqlite3.connect(f"file:{state / 'viocli.db'}?mode=ro", uri=True)
    try:
        for table in ("deployments", "nodes", "operations", "backups"):
            column = "name" if table == "deployments" else "deployment"
            assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column}=?", (TINY,)).fetchone() == (0,), table
    finally:
        db.close()
    assert other.exists() == other_there  # the HA deployment sharing the lab is untouched
