"""Backups on a target (a local directory here; the lab tests the NFS export): names, manifests, the
check of every file, the streams through zstd, retention, the catalog, and the OMS round trip."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import pytest
import zstandard

from viocli.backup import naming
from viocli.backup.manifest import Manifest, StoredFile, check_files, read_manifest, write_manifest
from viocli.backup.stream import node_to_target, target_to_node
from viocli.backup.target import DirectoryTarget
from viocli.errors import BadInput, OperationFailed, Refused
from viocli.ops import backup as ops_backup
from viocli.settings import load_settings
from viocli.state.store import StateStore

GENERATE = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(bytes(range(256)) * 40000)"]
DATA = bytes(range(256)) * 40000


@pytest.fixture
def target(tmp_path: Path) -> DirectoryTarget:
    root = tmp_path / "export"
    root.mkdir()
    return DirectoryTarget(root)


def _manifest(name: str, deployment: str = "vio-prod", files: list[StoredFile] | None = None) -> Manifest:
    kind = naming.kind_of(name)
    assert kind is not None
    return Manifest(kind, name, deployment, "2026-12-01T00:00:00+00:00", 1.0, files or [])


def _fake_backup(target: DirectoryTarget, name: str, deployment: str = "vio-prod") -> None:
    target.mkdir(name)
    data = b"backup " + name.encode()
    target.write_stream(f"{name}/data", io.BytesIO(data))
    write_manifest(
        target, name, _manifest(name, deployment, [StoredFile("data", len(data), hashlib.sha256(data).hexdigest())])
    )


# --- names ----------------------------------------------------------------------------------------
def test_names_are_vio_style_utc_stamps_and_anything_else_is_bad_input() -> None:
    from datetime import UTC, datetime

    assert naming.new_name("openstack_db", datetime(2026, 2, 2, 20, 54, 8, tzinfo=UTC)) == "vio_os_db_20260202205408"
    assert naming.kind_of("vio_ms_20260202205408") == "mgmt_server"
    assert naming.kind_of("vio_os_db_2026") is None
    assert naming.unfinished(".partial-vio_os_db_20260202205408") == "vio_os_db_20260202205408"
    assert naming.unfinished(".partial-something") is None
    with pytest.raises(BadInput) as bad:
        naming.check_name("vio_ms_20260202205408", "openstack_db")
    assert bad.value.exit_code == 2 and "mgmt_server backup, not a openstack_db" in bad.value.message
    with pytest.raises(BadInput):
        naming.check_name("../etc")


# --- manifest and verify ------------------------------------------------------------------------
def test_manifest_round_trips_and_check_files_names_each_difference(target: DirectoryTarget) -> None:
    name = "vio_os_db_20261201000000"
    _fake_backup(target, name)
    manifest = read_manifest(target, name)
    assert manifest.name == name and manifest.files[0].name == "data"
    assert check_files(target, name, manifest) == []

    path = target.root / name / "data"
    flipped = bytearray(path.read_bytes())
    flipped[3] ^= 0x01
    path.write_bytes(bytes(flipped))
    (target.root / name / "stray").write_bytes(b"?")
    problems = check_files(target, name, manifest)
    assert problems[0].startswith("data: SHA-256") and problems[1] == "stray: not in the manifest"
    path.unlink()
    assert check_files(target, name, manifest)[0] == "data: missing"


def test_a_backup_without_its_final_name_or_manifest_is_never_usable(target: DirectoryTarget) -> None:
    name = "vio_os_db_20261201000000"
    target.mkdir(naming.partial(name))
    with pytest.raises(OperationFailed, match="never completed"):
        ops_backup.load_backup(target, name)
    target.mkdir(name)
    with pytest.raises(OperationFailed, match=r"has no manifest\.json"):
        ops_backup.load_backup(target, name)
    with pytest.raises(BadInput, match="no backup named"):
        ops_backup.load_backup(target, "vio_os_db_20991201000000")


# --- streams --------------------------------------------------------------------------------------
def test_a_command_streams_through_zstd_to_the_target_and_back_unchanged(target: DirectoryTarget, tmp_path) -> None:
    result = node_to_target(GENERATE, target, "dump.zst", what="the generator")
    stored = (target.root / "dump.zst").read_bytes()
    assert result.stored.size == len(stored) < len(DATA) // 10  # compressed
    assert result.stored.sha256 == hashlib.sha256(stored).hexdigest()
    assert result.stored.raw_size == len(DATA)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == DATA

    out = tmp_path / "back"
    argv = ["sh", "-c", f"cat > {out}"]
    target_to_node(target, "dump.zst", argv, what="the receiver", expect=result.stored)
    assert out.read_bytes() == DATA

    wrong = StoredFile("dump.zst", result.stored.size, "0" * 64)
    with pytest.raises(OperationFailed, match="differs from its manifest entry"):
        target_to_node(target, "dump.zst", argv, what="the receiver", expect=wrong)


def test_a_failing_command_fails_the_stream_with_its_last_error_line(target: DirectoryTarget) -> None:
    argv = ["sh", "-c", "head -c 1000 /dev/zero; echo 'mariabackup: Error: disk on fire' >&2; exit 3"]
    with pytest.raises(OperationFailed) as failed:
        node_to_target(argv, target, "dump.zst", what="mariabackup on database02")
    assert failed.value.message == "mariabackup on database02 failed: mariabackup: Error: disk on fire"


# --- retention, discard, catalog ----------------------------------------------------------------
def test_retention_keeps_the_newest_of_a_kind_and_deployment_never_the_new_one(target, viocli_env) -> None:
    for stamp in ("20261201000000", "20261202000000", "20261203000000", "20261204000000"):
        _fake_backup(target, f"vio_os_db_{stamp}")
    _fake_backup(target, "vio_os_db_20261130000000", deployment="other")
    _fake_backup(target, "vio_ms_20261130000000", deployment=ops_backup.OMS)
    store = StateStore.open_writable(load_settings().db_path)
    try:
        removed = ops_backup.apply_retention(store, target, "vio-prod", "openstack_db", 2, "vio_os_db_20261204000000")
    finally:
        store.close()
    assert removed == ["vio_os_db_20261201000000", "vio_os_db_20261202000000"]
    assert target.listdir("") == [
        "vio_ms_20261130000000",
        "vio_os_db_20261130000000",
        "vio_os_db_20261203000000",
        "vio_os_db_20261204000000",
    ]


def test_a_failed_backup_is_marked_failed_and_its_partial_directory_removed(target, viocli_env) -> None:
    store = StateStore.open_writable(load_settings().db_path)
    name = "vio_os_db_20261201000000"
    try:
        with pytest.raises(OperationFailed), ops_backup._catalogued(store, "vio-prod", name, "openstack_db", target):
            target.mkdir(naming.partial(name))
            target.write_stream(f"{naming.partial(name)}/half", io.BytesIO(b"half"))
            raise OperationFailed("write mariadb.mbstream.zst: No space left on device")
        [record] = store.backups("vio-prod")
    finally:
        store.close()
    assert (record.status, record.message) == ("failed", "write mariadb.mbstream.zst: No space left on device")
    assert target.listdir("") == []


def test_list_shows_a_killed_backup_failed_and_its_leftover_incomplete(target, viocli_env) -> None:
    settings = load_settings()
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment("vio-prod", Path("/nowhere.yml"), "ha")
    store.start_backup("vio-prod", "vio_os_db_20261201000000", "openstack_db", target.spec)  # never finished
    store.close()
    target.mkdir(naming.partial("vio_os_db_20261202000000"))
    _fake_backup(target, "vio_os_db_20261203000000")
    listed = {b.name: b for b in ops_backup.list_backups(settings, "vio-prod", target.spec)}
    assert listed["vio_os_db_20261201000000"].state == "failed"  # no live process holds the lock
    assert listed["vio_os_db_20261202000000"].state == "incomplete"
    assert (listed["vio_os_db_20261203000000"].state, listed["vio_os_db_20261203000000"].where) == (
        "complete",
        "export",
    )


def test_discard_first_renames_a_backup_so_that_it_never_looks_complete_half_removed(target) -> None:
    _fake_backup(target, "vio_os_db_20261201000000")
    renamed = []
    rename = target.rename
    target.rename = lambda old, new: (renamed.append((old, new)), rename(old, new))  # type: ignore[method-assign]
    ops_backup.discard(target, "vio_os_db_20261201000000")
    assert renamed == [("vio_os_db_20261201000000", ".partial-vio_os_db_20261201000000")]
    assert target.listdir("") == []


def test_the_nfs_volume_defaults_to_the_inventory_and_is_needed_otherwise() -> None:
    with pytest.raises(BadInput, match="no NFS_VOLUME given"):
        ops_backup.target_spec(None, None)
    assert ops_backup.target_spec(None, "/srv/backups") == "/srv/backups"


# --- the OMS: back up, lose, restore --------------------------------------------------------------
@pytest.fixture
def oms(viocli_env, example):
    from viocli.secrets.store import SecretStore

    settings = load_settings()
    inventory = example("tiny")
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment("vio-tiny", inventory, "tiny")
    store.close()
    SecretStore(settings.deployment_dir("vio-tiny")).set("vcenter_password", "VcPass-0123456789")
    (settings.state_dir / "ssh").mkdir()
    key = settings.state_dir / "ssh" / "id_ed25519"
    key.write_text("PRIVATE KEY\n")
    key.chmod(0o600)
    return settings


def test_the_oms_comes_back_from_its_backup_file_for_file_and_mode_for_mode(oms, target) -> None:
    secrets = oms.deployment_dir("vio-tiny") / "secrets.yml"
    before = {p: (p.read_bytes(), p.stat().st_mode) for p in (secrets, oms.state_dir / "ssh" / "id_ed25519")}
    store_mode = oms.db_path.stat().st_mode  # 0644: any user reads the state store (show, status)
    result = ops_backup.backup_mgmt_server(oms, None, target.spec, "a long passphrase")
    stored = (target.root / result.name / ops_backup.OMS_FILE).read_bytes()
    assert stored.startswith(b"age-encryption.org/v1") and b"VcPass" not in stored
    assert json.loads((target.root / result.name / "manifest.json").read_text())["kind"] == "mgmt_server"

    from viocli.ops.restore import restore_mgmt_server

    with pytest.raises(Refused, match="already has deployments"):
        restore_mgmt_server(oms, result.name, target.spec, "a long passphrase")
    with pytest.raises(BadInput, match="wrong passphrase"):
        restore_mgmt_server(oms, result.name, target.spec, "not the passphrase", force=True)
    for path in before:
        path.unlink()
    oms.db_path.unlink()
    restored = restore_mgmt_server(oms, result.name, target.spec, "a long passphrase")
    assert restored.deployments == ["vio-tiny"]
    assert {p: (p.read_bytes(), p.stat().st_mode) for p in before} == before
    assert oms.db_path.stat().st_mode == store_mode, "the state store must keep its own mode, not its snapshot's"


def test_a_mgmt_server_backup_that_does_not_verify_is_refused(oms, target) -> None:
    from viocli.ops.restore import restore_mgmt_server

    result = ops_backup.backup_mgmt_server(oms, None, target.spec, "a long passphrase")
    path = target.root / result.name / ops_backup.OMS_FILE
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(Refused, match=r"refusing to restore: backup vio_ms_\d+ on \S+ does not verify"):
        restore_mgmt_server(oms, result.name, target.spec, "a long passphrase", force=True)


def test_verify_records_verified_then_failed_in_the_catalog(target, viocli_env) -> None:
    """A backup made elsewhere enters the catalog verified; a changed byte later marks it failed."""
    settings = load_settings()
    StateStore.open_writable(settings.db_path).close()
    name = "vio_os_db_20261201000000"
    _fake_backup(target, name)
    assert ops_backup.verify(settings, None, name, target.spec).files == 1
    store = StateStore.open_readonly(settings.db_path)
    assert store is not None and (store.backup_named(name).status, store.backup_named(name).deployment) == (
        "verified",
        "vio-prod",
    )
    store.close()
    (target.root / name / "data").write_bytes(b"changed")
    with pytest.raises(OperationFailed, match="does not verify"):
        ops_backup.verify(settings, None, name, target.spec)
    store = StateStore.open_readonly(settings.db_path)
    assert store is not None and store.backup_named(name).status == "failed"
    store.close()
