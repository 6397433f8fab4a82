"""The OMS backup's archive: what it holds (and leaves out), the consistent state store copy, and the
passphrase encryption (age) that a wrong passphrase or a changed byte cannot get past."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from viocli.backup import oms_archive
from viocli.errors import BadInput
from viocli.settings import Settings
from viocli.state.store import StateStore


@pytest.fixture
def oms(tmp_path: Path) -> Settings:
    """An OMS with one deployment: state store, SSH key pair, secrets, PKI, runner artifacts, inventory."""
    settings = Settings(tmp_path / "etc" / "viocli.conf", tmp_path / "state", tmp_path / "log", None)
    settings.config_file.parent.mkdir()
    settings.config_file.write_text("[paths]\nstate_dir = /var/lib/viocli\n")
    inventories = tmp_path / "inv"
    inventories.mkdir()
    (inventories / "ha.yml").write_text("deployment_name: vio-prod\ncustom_file: custom.yml\n")
    (inventories / "custom.yml").write_text("nova_api_workers: 2\n")
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment("vio-prod", inventories / "ha.yml", "ha")
    store.close()
    (settings.state_dir / "ssh").mkdir()
    (settings.state_dir / "ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    (settings.state_dir / "ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAA viocli-oms\n")
    deployment = settings.deployment_dir("vio-prod")
    (deployment / "tls").mkdir(parents=True)
    (deployment / "secrets.yml").write_text("keystone_admin_password: s3cret\n")
    (deployment / "secrets.yml").chmod(0o600)
    (deployment / "known_hosts").write_text("controller01 ssh-ed25519 AAAA\n")
    (deployment / "tls" / "external-ca.key").write_text("CA KEY\n")
    (deployment / "runner" / "artifacts").mkdir(parents=True)
    (deployment / "runner" / "artifacts" / "stdout").write_text("a large log\n")
    (deployment / "facts").mkdir()
    (deployment / "facts" / "controller01").write_text("{}")
    return settings


def test_the_archive_holds_what_rebuilds_the_oms_and_not_the_run_artifacts(oms: Settings) -> None:
    archive, files = oms_archive.build(oms)
    members = {f.member for f in files}
    assert members == {
        "state/viocli.db",
        "state/ssh/id_ed25519",
        "state/ssh/id_ed25519.pub",
        "state/deployments/vio-prod/secrets.yml",
        "state/deployments/vio-prod/known_hosts",
        "state/deployments/vio-prod/tls/external-ca.key",
        "inventories/vio-prod/ha.yml",
        "inventories/vio-prod/custom.yml",
        "config/viocli.conf",
    }
    by_member = {f.member: f for f in files}
    assert by_member["state/deployments/vio-prod/secrets.yml"].mode == 0o600
    assert by_member["inventories/vio-prod/custom.yml"].origin == str(oms.db_path.parent.parent / "inv" / "custom.yml")
    manifest, contents = oms_archive.read_manifest(archive, "test")
    assert manifest["state_dir"] == str(oms.state_dir)
    assert contents["state/deployments/vio-prod/tls/external-ca.key"] == b"CA KEY\n"


def test_the_state_store_copy_is_a_working_database(oms: Settings, tmp_path: Path) -> None:
    archive, _ = oms_archive.build(oms)
    _, contents = oms_archive.read_manifest(archive, "test")
    copy = tmp_path / "restored.db"
    copy.write_bytes(contents["state/viocli.db"])
    with sqlite3.connect(copy) as connection:
        assert connection.execute("SELECT name, mode FROM deployments").fetchall() == [("vio-prod", "ha")]


def test_encrypted_with_a_passphrase_and_refused_with_another(oms: Settings) -> None:
    archive, _ = oms_archive.build(oms)
    sealed = oms_archive.encrypt(archive, "correct horse battery staple")
    assert b"s3cret" not in sealed and b"CA KEY" not in sealed
    assert oms_archive.decrypt(sealed, "correct horse battery staple", "vio_ms_1") == archive
    with pytest.raises(BadInput, match="vio_ms_1: cannot decrypt it"):
        oms_archive.decrypt(sealed, "wrong", "vio_ms_1")
    flipped = bytearray(sealed)
    flipped[-20] ^= 0x01
    with pytest.raises(BadInput, match="cannot decrypt"):
        oms_archive.decrypt(bytes(flipped), "correct horse battery staple", "vio_ms_1")


def test_secrets_stored_before_deployment_create_are_in_the_archive(oms: Settings) -> None:
    """`secrets set vcenter_password -d NAME` comes before `deployment create -i FILE`: that deployment has
    no record yet, but its secrets are OMS state (found when a lab's second deployment lost them)."""
    waiting = oms.deployment_dir("vio-next")
    waiting.mkdir(parents=True)
    (waiting / "secrets.yml").write_text("vcenter_password: VcPass\n")
    (oms.state_dir / "deployments" / "not a name").mkdir()
    members = {f.member for f in oms_archive.build(oms)[1]}
    assert "state/deployments/vio-next/secrets.yml" in members
    assert not any("not a name" in m for m in members)
