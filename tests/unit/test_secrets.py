"""Secrets: generated strong on first use, 0600, optional vault, root only, never on argv or output."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from viocli.cli.main import cli
from viocli.errors import Refused
from viocli.secrets.catalog import GENERATED
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings
from viocli.state.store import StateStore

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_on_first_use_strong_unique_and_private(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "deployments" / "vio")
    values = store.ensure_generated()
    assert set(values) == set(GENERATED)
    assert _mode(store.path) == 0o600
    assert _mode(store.dir) == 0o700
    flat = [v for value in values.values() for v in (value if isinstance(value, list) else [value])]
    assert len(set(flat)) == len(flat), "every secret is distinct"
    assert len(values["nova_db_password"]) >= 32
    assert len(values["keepalived_vrrp_password"]) == 8  # VRRP auth_pass limit
    assert values["rabbitmq_erlang_cookie"].isupper() and len(values["rabbitmq_erlang_cookie"]) == 32
    for key in values["keystone_fernet_keys"]:
        assert len(base64.urlsafe_b64decode(key)) == 32
    # Second use: nothing regenerated.
    assert SecretStore(store.dir).ensure_generated() == values
    other = SecretStore(tmp_path / "deployments" / "other").ensure_generated()
    assert other["keystone_admin_password"] != values["keystone_admin_password"]


def test_vault_encryption(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "d")
    values = store.ensure_generated()
    assert store.encrypt() is True
    assert store.path.read_bytes().startswith(b"$ANSIBLE_VAULT")
    assert values["keystone_admin_password"].encode() not in store.path.read_bytes()
    assert _mode(store.vault_password_path) == 0o400
    assert _mode(store.path) == 0o600
    assert SecretStore(store.dir).load() == values
    assert store.encrypt() is False


def test_vault_password_file_must_be_0400(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "d")
    store.ensure_generated()
    store.encrypt()
    os.chmod(store.vault_password_path, 0o644)
    with pytest.raises(Refused, match="must be 0400"):
        SecretStore(store.dir).load()


def _generated(name: str = "vio-tiny") -> dict:
    """Generate a deployment's secrets through the store, as ``deployment create`` does."""
    return SecretStore(load_settings().deployment_dir(name)).ensure_generated()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _register(name: str = "vio-tiny") -> None:
    store = StateStore.open_writable(load_settings().db_path)
    store.register_deployment(name, EXAMPLES / "tiny.yml", "tiny")
    store.close()


def test_secrets_show_prints_value_for_root(viocli_env) -> None:
    _generated()
    result = CliRunner().invoke(cli, ["secrets", "show", "keystone_admin_password", "-i", str(EXAMPLES / "tiny.yml")])
    assert result.exit_code == 0, result.output
    value = result.stdout.strip()
    stored = SecretStore(load_settings().deployment_dir("vio-tiny")).load()["keystone_admin_password"]
    assert value == stored
    log = (viocli_env / "log" / "viocli.log").read_text()
    assert "secret keystone_admin_password of vio-tiny shown" in log
    assert value not in log


def test_secrets_show_refused_for_non_root(viocli_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["secrets", "show", "keystone_admin_password", "-i", str(EXAMPLES / "tiny.yml")])
    assert result.exit_code == 4
    assert result.stdout == ""


def test_secrets_set_reads_stdin_never_argv(viocli_env) -> None:
    args = ["secrets", "set", "vcenter_password", "-i", str(EXAMPLES / "tiny.yml")]
    result = CliRunner().invoke(cli, args, input="Sup3r-Secret-VC\n")
    assert result.exit_code == 0, result.output
    assert "Sup3r-Secret-VC" not in result.output
    assert SecretStore(load_settings().deployment_dir("vio-tiny")).load()["vcenter_password"] == "Sup3r-Secret-VC"
    # There is no option to pass a value on the command line.
    assert CliRunner().invoke(cli, [*args, "value-on-argv"]).exit_code == 2
    assert "Sup3r-Secret-VC" not in (viocli_env / "log" / "viocli.log").read_text()


def test_secrets_unknown_name_did_you_mean(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["secrets", "show", "keystone_admin_pasword", "-i", str(EXAMPLES / "tiny.yml")])
    assert result.exit_code == 2
    assert "did you mean keystone_admin_password?" in result.stderr


def test_secrets_list_shows_names_not_values(viocli_env) -> None:
    runner = CliRunner()
    values = _generated()
    result = runner.invoke(cli, ["secrets", "list", "-i", str(EXAMPLES / "tiny.yml")])
    assert result.exit_code == 0
    assert "nova_db_password" in result.stdout
    assert values["nova_db_password"] not in result.stdout


def test_secrets_show_never_generates(viocli_env) -> None:
    """Before ``deployment create`` a secret has no value yet: show says so and writes nothing."""
    result = CliRunner().invoke(cli, ["secrets", "show", "keystone_admin_password", "-i", str(EXAMPLES / "tiny.yml")])
    assert result.exit_code == 4
    assert "not generated yet; `deployment create` generates it" in result.stderr
    assert result.stdout == ""
    assert _tree(viocli_env / "state") == []


def test_secrets_show_of_a_mistyped_deployment_creates_nothing(viocli_env) -> None:
    _register()
    before = _tree(viocli_env / "state")
    result = CliRunner().invoke(cli, ["secrets", "show", "keystone_admin_password", "-d", "vio-tyni"])
    assert result.exit_code == 2
    assert "deployment 'vio-tyni' is not known on this OMS; did you mean vio-tiny?" in result.stderr
    assert result.stdout == ""
    assert _tree(viocli_env / "state") == before
    assert not (viocli_env / "state" / "deployments" / "vio-tyni").exists()


def test_secrets_show_path_traversal_refused(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["secrets", "show", "keystone_admin_password", "-d", "../../../tmp/x"])
    assert result.exit_code == 2
    assert "not a valid deployment name" in result.stderr
    assert _tree(viocli_env / "state") == []


def test_secrets_list_of_an_unknown_deployment_is_refused(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["secrets", "list", "-d", "nosuch"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "deployment 'nosuch' is not known on this OMS" in result.stderr
    assert _tree(viocli_env / "state") == []


def test_secrets_list_before_create_creates_nothing(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["secrets", "list", "-i", str(EXAMPLES / "tiny.yml")])
    assert result.exit_code == 0, result.output
    assert "not yet" in result.stdout
    assert _tree(viocli_env / "state") == []


def test_secrets_set_of_an_unknown_deployment_points_to_the_inventory(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["secrets", "set", "vcenter_password", "-d", "vio-tiny"], input="Vc-Pass-1\n")
    assert result.exit_code == 2
    assert "secrets set vcenter_password -i FILE" in result.stderr
    assert _tree(viocli_env / "state") == []


def test_secrets_set_with_d_once_the_deployment_exists(viocli_env) -> None:
    _register()
    result = CliRunner().invoke(cli, ["secrets", "set", "vcenter_password", "-d", "vio-tiny"], input="Vc-Pass-1\n")
    assert result.exit_code == 0, result.output
    assert SecretStore(load_settings().deployment_dir("vio-tiny")).load() == {"vcenter_password": "Vc-Pass-1"}


def test_secrets_set_d_must_match_the_inventory(viocli_env) -> None:
    args = ["secrets", "set", "vcenter_password", "-i", str(EXAMPLES / "tiny.yml"), "-d", "vio-prod"]
    result = CliRunner().invoke(cli, args, input="Vc-Pass-1\n")
    assert result.exit_code == 2
    assert "does not match the inventory's name 'vio-tiny'" in result.stderr
    assert _tree(viocli_env / "state") == []


def test_store_get_reads_only(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "deployments" / "vio")
    with pytest.raises(Refused, match="not generated yet"):
        store.get("keystone_admin_password")
    assert not store.dir.exists()
