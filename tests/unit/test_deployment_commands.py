"""``deployment create`` and ``configure`` refuse clearly before touching anything."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from viocli.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_create_needs_an_inventory(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["deployment", "create", "--yes"])
    assert result.exit_code == 2
    assert "needs the inventory file" in result.stderr


def test_create_names_a_missing_inventory(viocli_env, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["deployment", "create", "-i", str(tmp_path / "nope.yml"), "--yes"])
    assert result.exit_code == 2
    assert "nope.yml" in result.stderr and "not found" in result.stderr
    assert not (viocli_env / "state" / "viocli.db").exists()


def test_create_cancelled_at_the_plan_changes_nothing(viocli_env, example) -> None:
    inventory = example("tiny")
    result = CliRunner().invoke(cli, ["deployment", "create", "-i", str(inventory)], input="n\n")
    assert result.exit_code == 4, result.output
    assert "controller01" in result.stdout  # the plan was shown
    assert "cancelled" in result.stderr
    from viocli.settings import load_settings
    from viocli.state.store import StateStore

    store = StateStore.open_readonly(load_settings().db_path)
    assert store is None or store.deployment("vio-tiny") is None


def test_configure_refuses_a_deployment_never_created(viocli_env, example) -> None:
    inventory = example("tiny")
    result = CliRunner().invoke(cli, ["deployment", "configure", "-i", str(inventory)])
    assert result.exit_code == 4
    lines = _lines(result.stderr)
    assert "nothing to configure" in lines[0]
    assert any("deployment create" in line for line in lines)


def _register(name: str = "vio-tiny") -> None:
    from viocli.settings import load_settings
    from viocli.state.store import StateStore

    store = StateStore.open_writable(load_settings().db_path)
    store.register_deployment(name, EXAMPLES / "tiny.yml", "tiny")
    store.set_deployment_status(name, "running")
    store.close()


def test_configure_refuses_an_unknown_deployment_with_did_you_mean(viocli_env) -> None:
    _register()
    result = CliRunner().invoke(cli, ["deployment", "configure", "-d", "vio-tyni"])
    assert result.exit_code == 2
    assert "deployment 'vio-tyni' is not known on this OMS; did you mean vio-tiny?" in _lines(result.stderr)[0]


def test_configure_refuses_an_invalid_name_before_anything(viocli_env) -> None:
    for args in (["deployment", "configure", "-d", ""], ["deployment", "-d", "../x", "configure"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        assert len(_lines(result.stderr)) == 1 and "not a valid deployment name" in result.stderr
    assert not (viocli_env / "state").exists()
