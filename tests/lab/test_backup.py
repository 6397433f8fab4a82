"""Backups to the lab's NFS export and restores from them (issue 10), on the shared HA deployment.

What an operator checks: the cloud's objects and every table come back exactly as they were backed up;
a backup never disturbs the clients; a bad target or a fault leaves nothing that looks complete, a
failed catalog entry and a deployment that backs up fine the next time. Each scenario leaves the
deployment healthy. Needs root and the lab.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.clients import ApiClientLoop, RowWriterLoop
from tests.lab.conftest import HA, configure
from tests.lab.oms import (
    DATABASES,
    EXTERNAL_VIP,
    admin_password,
    external_ca,
    on_node,
    on_node_run,
    openstack,
    run_viocli,
    status_json,
)
from viocli.backup.galera import checksum_command, parse_checksums
from viocli.lab import nfs_server

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

EXPORT = "10.203.0.1:/vio_backup"
ROWS = 100_000
MARKER = "viocli-restore"


def _export_dir(env: dict[str, str]) -> Path:
    return Path(env["VIOCLI_STATE_DIR"]) / "lab" / "nfs" / "export"


def _healthy(env: dict[str, str]) -> None:
    failed = [r for r in status_json(env, HA) if r["overall_status"] == "FAILURE"]
    assert failed == [], failed


def _viocli(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess:
    result = run_viocli(env, *args)
    assert result.returncode == code, result.stdout + result.stderr
    return result


def _backup(env: dict[str, str], target: str = EXPORT) -> str:
    """``backup openstack_db``; the new backup's name."""
    out = _viocli(env, "backup", "openstack_db", target, "-d", HA).stdout
    return out.split()[1]


def _catalog(env: dict[str, str]) -> dict[str, dict]:
    listed = _viocli(env, "backup", "list", EXPORT, "-d", HA, "--format", "json").stdout
    return {entry["name"]: entry for entry in json.loads(listed)}


def _complete_looking(env: dict[str, str]) -> set[str]:
    """Backup directories on the export with a final name."""
    return {p.name for p in _export_dir(env).iterdir() if p.name.startswith("vio_")}


def _table_checksums(env: dict[str, str], address: str) -> dict[str, dict]:
    return parse_checksums(on_node(env, HA, address, checksum_command()))


@pytest.fixture(scope="module")
def cloud_data(ha) -> dict[str, str]:
    """Recognisable objects made through the OpenStack API, and a table of 100k rows of the test's own."""
    env, _, _ = ha
    conn = openstack(env, HA, EXTERNAL_VIP)
    tag = secrets.token_hex(3)
    project = conn.identity.create_project(name=f"{MARKER}-{tag}", domain_id="default", description="before")
    user = conn.identity.create_user(name=f"{MARKER}-{tag}", domain_id="default", password=secrets.token_hex(12))
    flavor = conn.compute.create_flavor(name=f"{MARKER}-{tag}", ram=512, vcpus=1, disk=1)
    image = conn.image.create_image(
        name=f"{MARKER}-{tag}", data=b"x" * 4096, disk_format="raw", container_format="bare"
    )
    network = conn.network.create_network(name=f"{MARKER}-{tag}")
    sql = (
        "CREATE DATABASE IF NOT EXISTS viocli_restore;\n"
        "USE viocli_restore;\n"
        "CREATE OR REPLACE TABLE viocli_restore.big (id INT PRIMARY KEY, payload CHAR(64)) ENGINE=InnoDB;\n"
        f"INSERT INTO viocli_restore.big SELECT seq, SHA2(seq, 256) FROM seq_1_to_{ROWS};\n"
    )
    done = on_node_run(env, HA, DATABASES[0], "mysql --batch", stdin=sql)
    assert done.returncode == 0, done.stderr
    return {
        "project": project.id,
        "user": user.id,
        "flavor": flavor.id,
        "image": image.id,
        "network": network.id,
        "name": f"{MARKER}-{tag}",
    }


def test_backup_while_serving_then_wipe_and_restore_gives_back_every_object_and_checksum(
    ha, cloud_data, writer_account
) -> None:
    env, _, _ = ha
    client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA))
    try:
        # 1. A backup while clients use the cloud: no failed API request, no failed write.
        with client, RowWriterLoop(**writer_account) as writer:
            writer.wait_acknowledged(20)
            name = _backup(env)
            writer.wait_acknowledged(5)
        assert client.failures == [] and client.records, client.failures
        assert writer.errors == [], writer.errors[:3]
        manifest = json.loads((_export_dir(env) / name / "manifest.json").read_text())
        tables = manifest["details"]["tables"]
        assert tables["viocli_restore.big"]["rows"] == ROWS
        assert {t.split(".")[0] for t in tables} >= {
            "keystone",
            "glance",
            "placement",
            "nova_api",
            "nova_cell0",
            "nova",
            "neutron",
            "cinder",
            "heat",
        }
        member = manifest["details"]["member"]
        assert member != "database01"  # HAProxy's primary member serves the clients: another one is used
        assert manifest["details"]["galera_position"].count(":") == 1
        assert _catalog(env)[name]["state"] == "complete"

        # 2. verify, with a restore into a throwaway MariaDB
        verified = _viocli(env, "backup", "verify", name, EXPORT, "-d", HA, "--restore-test").stdout
        assert f"{len(tables)} tables match" in verified
        assert _catalog(env)[name]["state"] == "verified"

        # 3. Delete and change data, through the API and in the table.
        conn = openstack(env, HA, EXTERNAL_VIP)
        conn.identity.delete_project(cloud_data["project"])
        conn.identity.delete_user(cloud_data["user"])
        conn.compute.delete_flavor(cloud_data["flavor"])
        conn.network.delete_network(cloud_data["network"])
        conn.image.delete_image(cloud_data["image"])
        changed = on_node_run(
            env,
            HA,
            DATABASES[0],
            "mysql --batch",
            stdin=(
                "DELETE FROM viocli_restore.big WHERE id <= 1000;\n"
                "UPDATE viocli_restore.big SET payload = 'changed' WHERE id > 99000;\n"
            ),
        )
        assert changed.returncode == 0, changed.stderr
        assert _table_checksums(env, DATABASES[2])["viocli_restore.big"] != tables["viocli_restore.big"]

        # 4. Restore: every table as in the manifest, every object back.
        restored = _viocli(env, "restore", "openstack_db", name, EXPORT, "-d", HA, "--yes").stdout
        assert f"{len(tables)} tables match the backup's checksums" in restored
        for address in DATABASES:  # the members that joined took the restored data too
            assert _table_checksums(env, address)["viocli_restore.big"] == tables["viocli_restore.big"]
        conn = openstack(env, HA, EXTERNAL_VIP)
        assert conn.identity.get_project(cloud_data["project"]).description == "before"
        assert conn.identity.get_user(cloud_data["user"]).name == cloud_data["name"]
        assert conn.compute.get_flavor(cloud_data["flavor"]).ram == 512
        assert conn.network.get_network(cloud_data["network"]).name == cloud_data["name"]
        assert conn.image.get_image(cloud_data["image"]).name == cloud_data["name"]
    finally:
        _healthy(env)


def test_verify_catches_a_flipped_byte(ha) -> None:
    env, _, _ = ha
    name = _backup(env)
    data = _export_dir(env) / name / "mariadb.mbstream.zst"
    original = data.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    data.write_bytes(bytes(flipped))
    try:
        failed = _viocli(env, "backup", "verify", name, EXPORT, "-d", HA, code=1)
        assert f"backup {name} on {EXPORT} does not verify: mariadb.mbstream.zst: SHA-256" in failed.stderr
        assert _catalog(env)[name]["state"] == "failed"
        refused = _viocli(env, "restore", "openstack_db", name, EXPORT, "-d", HA, "--yes", code=4)
        assert "refusing to restore" in refused.stderr
    finally:
        data.write_bytes(original)


def test_mgmt_server_backup_rebuilds_a_lost_oms(ha, tmp_path: Path) -> None:
    env, _, _ = ha
    state = Path(env["VIOCLI_STATE_DIR"])
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(secrets.token_urlsafe(24) + "\n")
    passphrase.chmod(0o600)
    made = _viocli(env, "backup", "mgmt_server", EXPORT, "-d", HA, "--passphrase-file", str(passphrase)).stdout
    name = made.split()[1]
    stored = (_export_dir(env) / name / "oms.tar.gz.age").read_bytes()
    assert stored.startswith(b"age-encryption.org/v1") and b"vcenter_password" not in stored

    lost = Path(tempfile.mkdtemp(prefix="lost-oms-", dir=state.parent))
    parts = [p for p in ("viocli.db", "deployments", "ssh", "locks") if (state / p).exists()]
    for part in parts:  # the OMS loses its state (the lab's own files, state/lab, stay: they are the "datacenter")
        shutil.move(state / part, lost / part)
    try:
        restored = _viocli(env, "restore", "mgmt_server", name, EXPORT, "--passphrase-file", str(passphrase)).stdout
        assert f"OMS restored from {name}" in restored and HA in restored
        kept = ("secrets.yml", "vault_password", "known_hosts", "id_ed25519", "id_ed25519.pub", "ca.key")
        for lost_file in (p for p in lost.rglob("*") if p.is_file() and p.name in kept):
            back = state / lost_file.relative_to(lost)
            assert back.read_bytes() == lost_file.read_bytes(), back  # tiny's secrets too: set before its create
            assert back.stat().st_mode == lost_file.stat().st_mode, back
        shown = _viocli(env, "show", "-d", HA).stdout
        assert "database01" in shown and "controller02" in shown
        _healthy(env)
        # The restored OMS drives every node with its restored key, known_hosts and secrets, and finds
        # nothing to change (the roles holding those secrets on every kind of node: 40 s, not 90).
        assert configure(env, HA, "-t", "mariadb,rabbitmq,keystone,glance,nova,haproxy") == 0
    finally:
        if not (state / "viocli.db").exists():  # the restore failed: put the state back as it was
            for part in parts:
                shutil.move(lost / part, state / part)
        shutil.rmtree(lost, ignore_errors=True)


# --- bad targets: refused before any database work, nothing written -------------------------------
@pytest.fixture(scope="module")
def bad_exports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A read-only export and a root-squashing one, each on a loopback address of its own."""
    handles = []
    try:
        for address, option in (("127.0.0.2", {"access": "RO"}), ("127.0.0.3", {"squash": "Root_Squash"})):
            root = tmp_path_factory.mktemp(f"nfs-{address}")
            handles.append(nfs_server.start(root / "lab", root / "export", address, **option))
        yield {"read-only": "127.0.0.2:/vio_backup", "root-squashed": "127.0.0.3:/vio_backup"}
    finally:
        for handle in handles:
            nfs_server.stop(handle)


@pytest.mark.parametrize(
    ("target", "code", "says"),
    [
        ("nfs-server-without-export", 2, "expected HOST:/EXPORT"),
        ("127.0.0.1:/vio_backup", 4, "127.0.0.1"),
        ("10.203.0.1:/no_such_export", 4, "/no_such_export"),
        ("read-only", 4, "read-write"),
        ("root-squashed", 4, "no_root_squash"),
    ],
)
def test_a_bad_target_is_refused_before_any_database_work(ha, bad_exports, target: str, code: int, says: str) -> None:
    env, _, _ = ha
    spec = bad_exports.get(target, target)
    before_catalog, before_export = set(_catalog(env)), _complete_looking(env)
    result = _viocli(env, "backup", "openstack_db", spec, "-d", HA, code=code)
    lines = [line for line in result.stderr.splitlines() if line.startswith("viocli: error")]
    assert len(lines) == 1 and says in result.stderr, result.stderr
    assert spec.split(":")[0] in lines[0] or code == 2
    assert set(_catalog(env)) == before_catalog  # refused before a catalog entry, a lock or a desync
    assert _complete_looking(env) == before_export


@pytest.fixture
def small_export(tmp_path: Path) -> Iterator[str]:
    """An export on a 1 MB file system: the backup fills it up."""
    export = tmp_path / "export"
    export.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "viocli-test-full", str(export)], check=True)
    handle = nfs_server.start(tmp_path / "lab", export, "127.0.0.4")
    try:
        yield "127.0.0.4:/vio_backup"
    finally:
        nfs_server.stop(handle)
        subprocess.run(["umount", str(export)], check=True)


def _next_backup_works(env: dict[str, str]) -> None:
    name = _backup(env)
    assert _catalog(env)[name]["state"] == "complete"
    _healthy(env)


def test_an_export_that_fills_up_leaves_no_complete_backup_and_a_failed_entry(ha, small_export: str) -> None:
    env, _, _ = ha
    result = _viocli(env, "backup", "openstack_db", small_export, "-d", HA, code=1)
    assert "No space left on device" in result.stderr or "ENOSPC" in result.stderr, result.stderr
    listed = json.loads(_viocli(env, "backup", "list", small_export, "-d", HA, "--format", "json").stdout)
    failed = [b for b in listed if b["state"] == "failed" and b["message"]]
    assert failed, listed
    assert not [b for b in listed if b["state"] in ("complete", "verified") and b["where"] != "catalog"], listed
    _next_backup_works(env)


def test_viocli_killed_mid_backup_leaves_no_complete_backup_releases_the_lock_and_the_member(ha) -> None:
    env, _, _ = ha
    before = _complete_looking(env)
    run = subprocess.Popen(
        [sys.executable, "-m", "viocli", "backup", "openstack_db", EXPORT, "-d", HA],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        partial = []
        while time.monotonic() < deadline and not partial and run.poll() is None:
            partial = [p for p in _export_dir(env).glob(".partial-vio_os_db_*/*") if "mbstream" in p.name]
            time.sleep(0.05)  # no event to wait on for a file on the export
        assert partial, "the backup ended before it wrote anything"
        os.kill(run.pid, signal.SIGKILL)
    finally:
        run.wait()
    assert _complete_looking(env) == before
    name = partial[0].parent.name.removeprefix(".partial-")
    entry = _catalog(env)[name]
    assert entry["state"] in ("failed", "incomplete"), entry
    # the member viocli held still is Synced again (its session died with viocli)
    deadline = time.monotonic() + 60
    while True:
        states = [
            on_node(env, HA, a, "mysql -N -B -e \"SHOW STATUS LIKE 'wsrep_local_state_comment'\"").split()[-1]
            for a in DATABASES
        ]
        if states == ["Synced"] * 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert states == ["Synced"] * 3
    _next_backup_works(env)
    assert _catalog(env)[name]["state"] == "failed"  # the next operation marked it
