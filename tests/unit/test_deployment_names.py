"""One name rule for ``-d``, the default deployment and the state dir; unknown deployments refused.

Every refusal here must leave the state dir exactly as it was: nothing created, nothing generated.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from viocli.cli.main import cli
from viocli.errors import BadInput
from viocli.names import NAME_RULE, check_deployment_name, did_you_mean
from viocli.ops.context import deployment_name, known_deployment
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings
from viocli.state.store import StateStore

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"
TINY = EXAMPLES / "tiny.yml"

# Every command that takes -d, with the arguments it needs to get as far as reading -d.
COMMANDS = [
    ["show"],
    ["show", "-p"],
    ["secrets", "show", "keystone_admin_password"],
    ["secrets", "list"],
    ["secrets", "set", "vcenter_password"],
    ["secrets", "encrypt"],
    ["deployment", "configure"],
    ["deployment", "status"],
    ["services", "restart"],
    ["backup", "list"],
    ["patch", "list"],
]
INVALID = ["", "../x", "../../../tmp/x", "UPPER", "a", "-x", "vio_prod", "vio prod", "vio-", "a/b", "x\n"]


def _tree(root: Path) -> list[str]:
    """Every path under ``root`` (files and directories), relative and sorted."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _register(name: str = "vio-tiny", inventory: Path = TINY) -> None:
    """Record a deployment in the state store, as ``deployment create`` does first."""
    store = StateStore.open_writable(load_settings().db_path)
    try:
        store.register_deployment(name, inventory, "tiny")
        store.set_deployment_status(name, "running")
    finally:
        store.close()


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args, input="Some-Value-123\n")


def _assert_refused_bad_name(result: Result, value: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # one clear line
    assert lines[0].startswith(f"viocli: error: -d {value!r} is not a valid deployment name")
    assert NAME_RULE in lines[0]
    assert result.stdout == ""


# --- the rule itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", INVALID)
def test_check_deployment_name_refuses(value: str) -> None:
    with pytest.raises(BadInput, match="not a valid deployment name"):
        check_deployment_name(value, "-d")


def test_check_deployment_name_accepts_and_suggests() -> None:
    assert check_deployment_name("vio-prod-2") == "vio-prod-2"
    assert did_you_mean("vio-tyni", ["vio-prod", "vio-tiny"]) == "vio-tiny"
    assert did_you_mean("zzz", ["vio-prod"]) is None


@pytest.mark.parametrize("name", ["", "..", "../x", "/etc", "a/b", "UPPER"])
def test_deployment_dir_never_leaves_the_state_dir(viocli_env, name: str) -> None:
    with pytest.raises(BadInput, match="not a valid deployment name"):
        load_settings().deployment_dir(name)
    assert load_settings().deployment_dir("vio-tiny") == viocli_env / "state" / "deployments" / "vio-tiny"


# --- -d with an invalid name: exit 2, one line, nothing created --------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("value", ["", "../../../tmp/x", "UPPER"])
def test_invalid_name_after_the_subcommand(viocli_env, command: list[str], value: str) -> None:
    _register()
    before = _tree(viocli_env / "state")
    _assert_refused_bad_name(_invoke([*command, "-d", value]), value)
    assert _tree(viocli_env / "state") == before


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_invalid_name_before_the_subcommand(viocli_env, command: list[str]) -> None:
    _assert_refused_bad_name(_invoke(["-d", "../x", *command]), "../x")
    _assert_refused_bad_name(_invoke([command[0], "-d", "", *command[1:]]), "")
    assert _tree(viocli_env / "state") == []


def test_traversal_writes_nothing_outside_the_state_dir(viocli_env, tmp_path: Path) -> None:
    target = tmp_path / "escaped"
    value = os.path.relpath(target, viocli_env / "state" / "deployments")
    result = _invoke(["secrets", "set", "vcenter_password", "-d", value])
    assert result.exit_code == 2
    assert not target.exists()
    assert _tree(viocli_env / "state") == []


def test_empty_name_is_not_the_default(viocli_env, monkeypatch: pytest.MonkeyPatch) -> None:
    _register()
    monkeypatch.setenv("VIOCLI_DEPLOYMENT", "vio-tiny")
    load_settings.cache_clear()
    _assert_refused_bad_name(_invoke(["show", "-d", ""]), "")


# --- the default deployment follows the same rule ----------------------------------------------


def test_invalid_default_from_the_environment(viocli_env, monkeypatch: pytest.MonkeyPatch) -> None:
    _register()
    monkeypatch.setenv("VIOCLI_DEPLOYMENT", "../vio-tiny")
    load_settings.cache_clear()
    before = _tree(viocli_env / "state")
    result = _invoke(["secrets", "list"])
    assert result.exit_code == 2
    assert "VIOCLI_DEPLOYMENT" in result.stderr and "not a valid deployment name" in result.stderr
    assert _tree(viocli_env / "state") == before


def test_invalid_default_from_viocli_conf(viocli_env) -> None:
    _register()
    conf = viocli_env / "etc" / "viocli.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[DEFAULT]\ndeployment = Vio/Tiny\n", encoding="utf-8")
    load_settings.cache_clear()
    result = _invoke(["show"])
    assert result.exit_code == 2
    assert str(conf) in result.stderr and "'Vio/Tiny' is not a valid deployment name" in result.stderr


def test_unknown_default_says_where_it_came_from(viocli_env, monkeypatch: pytest.MonkeyPatch) -> None:
    _register()
    monkeypatch.setenv("VIOCLI_DEPLOYMENT", "vio-tiyn")
    load_settings.cache_clear()
    result = _invoke(["show"])
    assert result.exit_code == 2
    assert "deployment 'vio-tiyn' (the default, from VIOCLI_DEPLOYMENT) is not known" in result.stderr
    assert "did you mean vio-tiny?" in result.stderr


# --- a valid name of an unknown deployment: exit 2, did-you-mean, nothing created --------------


@pytest.mark.parametrize("command", COMMANDS[:7], ids=" ".join)
def test_unknown_deployment_did_you_mean(viocli_env, command: list[str]) -> None:
    _register()
    before = _tree(viocli_env / "state")
    result = _invoke([*command, "-d", "vio-tyni"])
    assert result.exit_code == 2, result.output
    assert "deployment 'vio-tyni' is not known on this OMS; did you mean vio-tiny?" in result.stderr
    assert "hint:" in result.stderr
    assert _tree(viocli_env / "state") == before


@pytest.mark.parametrize("command", COMMANDS[:6], ids=" ".join)
def test_unknown_deployment_without_any_state(viocli_env, command: list[str]) -> None:
    result = _invoke([*command, "-d", "nosuch"])
    assert result.exit_code == 2, result.output
    assert "deployment 'nosuch' is not known on this OMS" in result.stderr
    assert result.stdout == ""
    assert _tree(viocli_env / "state") == []


def test_deployment_name_resolution(viocli_env) -> None:
    settings = load_settings()
    with pytest.raises(BadInput, match="not a valid deployment name"):
        deployment_name(settings, "", None)
    with pytest.raises(BadInput, match="not known on this OMS") as error:
        known_deployment("vio-x", None, hint="use -i FILE")
    assert error.value.hint == "use -i FILE"


def test_secrets_set_hint_names_the_inventory_flow(viocli_env) -> None:
    result = _invoke(["secrets", "set", "vcenter_password", "-d", "vio-tiny"])
    assert result.exit_code == 2
    assert "secrets set vcenter_password -i FILE" in result.stderr
    assert _tree(viocli_env / "state") == []


# --- a known deployment still works, before or after the sub-command ---------------------------


def test_known_deployment_before_and_after(viocli_env) -> None:
    _register()
    SecretStore(load_settings().deployment_dir("vio-tiny")).ensure_generated()
    for args in (["-d", "vio-tiny", "secrets", "list"], ["secrets", "list", "-d", "vio-tiny"]):
        result = _invoke(args)
        assert result.exit_code == 0, result.output
        assert "keystone_admin_password" in result.stdout
    result = _invoke(["secrets", "-d", "vio-tiny", "show", "keystone_admin_password"])
    assert result.exit_code == 0, result.output


# --- deployment default NAME -------------------------------------------------------------------


def test_default_refuses_an_invalid_name(viocli_env) -> None:
    result = _invoke(["deployment", "default", "../x"])
    assert result.exit_code == 2
    assert NAME_RULE in result.stderr
    assert not (viocli_env / "etc" / "viocli.conf").exists()


def test_default_refuses_an_unknown_deployment(viocli_env) -> None:
    _register()
    result = _invoke(["deployment", "default", "vio-tyni"])
    assert result.exit_code == 2
    assert "did you mean vio-tiny?" in result.stderr
    assert not (viocli_env / "etc" / "viocli.conf").exists()


def test_default_sets_a_known_deployment(viocli_env) -> None:
    _register()
    result = _invoke(["deployment", "default", "vio-tiny"])
    assert result.exit_code == 0, result.output
    load_settings.cache_clear()
    assert load_settings().default_deployment == "vio-tiny"
    assert _invoke(["show"]).exit_code == 0
