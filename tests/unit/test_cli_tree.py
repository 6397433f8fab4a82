"""The command tree: every command of DESIGN.md is registered, not-landed ones say so, root rules hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from viocli.cli.main import cli

# DESIGN.md section 2, as ("group", "command") paths.
DESIGN_COMMANDS = [
    ("deployment", "create"),
    ("deployment", "configure"),
    ("deployment", "start"),
    ("deployment", "stop"),
    ("deployment", "status"),
    ("deployment", "getlogs"),
    ("deployment", "destroy"),
    ("deployment", "cert-req-create"),
    ("deployment", "cert-update"),
    ("services", "start"),
    ("services", "stop"),
    ("services", "restart"),
    ("show",),
    ("inventory", "validate"),
    ("backup", "mgmt_server"),
    ("backup", "openstack_db"),
    ("backup", "list"),
    ("backup", "verify"),
    ("restore", "mgmt_server"),
    ("restore", "openstack_db"),
    ("recover",),
    ("patch", "add"),
    ("patch", "list"),
    ("patch", "install"),
    ("patch", "uninstall"),
    ("lab", "up"),
    ("lab", "down"),
    ("lab", "status"),
]


def _resolve(path: tuple[str, ...]) -> click.Command:
    ctx = click.Context(cli)
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group), f"{name} under a non-group"
        sub = command.get_command(ctx, name)
        assert sub is not None, f"viocli {' '.join(path)} is not registered"
        command = sub
    return command


@pytest.mark.parametrize("path", DESIGN_COMMANDS, ids=lambda p: " ".join(p))
def test_every_design_command_is_registered_with_help(path: tuple[str, ...]) -> None:
    command = _resolve(path)
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert command.help, f"viocli {' '.join(path)} has no help text"


def test_top_level_help_lists_every_group() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for group in {p[0] for p in DESIGN_COMMANDS}:
        assert f"  {group} " in result.output


def _not_landed_cli() -> click.Group:
    """A command tree holding one command whose capability has not landed (every command of DESIGN.md has)."""
    from viocli.cli.common import not_landed
    from viocli.cli.lazy import LazyGroup

    @click.group(name="viocli", cls=LazyGroup, lazy_commands={})
    def group() -> None:
        """A group."""

    @group.command(name="later")
    @not_landed("a later issue")
    def later() -> None:
        """Not built yet."""

    return group


def test_not_landed_commands_say_so_in_one_line_and_exit_4(viocli_env) -> None:
    result = CliRunner().invoke(_not_landed_cli(), ["later"], prog_name="viocli")
    assert result.exit_code == 4, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "not available yet" in lines[0] and "viocli later" in lines[0]
    assert result.stdout == ""


HEAVY = ("ansible", "ansible_runner", "pyVmomi", "pyVim", "rich", "paramiko", "pydantic", "yaml", "jinja2")


def _heavy_modules_after(*argvs: list[str]) -> list[str]:
    """Run viocli with each argv in a fresh interpreter; return the heavy modules it imported."""
    code = (
        "import sys\n"
        "from viocli.cli.main import cli\n"
        f"for argv in {list(argvs)!r}:\n"
        "    try:\n"
        "        cli(argv, prog_name='viocli')\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in result.stderr.strip().splitlines()[-1].split(",") if m] if result.stderr.strip() else []


def test_help_does_not_import_heavy_libraries() -> None:
    assert _heavy_modules_after(["--help"]) == []


def test_group_help_does_not_import_heavy_libraries() -> None:
    heavy = _heavy_modules_after(["deployment", "--help"], ["backup", "--help"], ["show", "--help"])
    assert not [m for m in heavy if m.split(".")[0] in ("ansible", "ansible_runner", "pyVmomi", "rich")]


def test_mutating_command_refuses_non_root(viocli_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["secrets", "list", "-i", "inventory/tiny.yml"])
    assert result.exit_code == 4
    assert result.stderr == "viocli: error: viocli secrets list must run as root: run it again with sudo\n"
    assert not (viocli_env / "state").exists(), "a refused command must not write anything"


def test_read_only_commands_work_for_any_user(viocli_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["show", "-i", "inventory/tiny.yml"])
    assert result.exit_code == 0, result.output
    assert "controller01" in result.stdout
    result = CliRunner().invoke(cli, ["inventory", "validate", "-i", "inventory/ha.yml"])
    assert result.exit_code == 0, result.output


def test_deployment_option_before_or_after_the_subcommand(viocli_env) -> None:
    before = CliRunner().invoke(cli, ["-d", "other", "show", "-i", "inventory/tiny.yml"])
    after = CliRunner().invoke(cli, ["show", "-i", "inventory/tiny.yml", "-d", "other"])
    for result in (before, after):
        assert result.exit_code == 2
        assert "-d other does not match the inventory's name 'vio-tiny'" in result.stderr


def test_recover_accepts_vio_single_dash_long_flags(viocli_env) -> None:
    # -dn and -nfs are VIO's spellings; they must not be read as -d n.
    result = CliRunner().invoke(cli, ["recover", "-r", "DB", "-dn", "vio_os_db_1", "-nfs", "h:/x"])
    assert result.exit_code == 4
    assert "no such option" not in result.output


def test_completion_script_for_each_shell() -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")):
        result = CliRunner().invoke(cli, ["completion", shell])
        assert result.exit_code == 0
        assert marker in result.stdout
        assert "_VIOCLI_COMPLETE" in result.stdout


def test_shell_completion_offers_subcommands() -> None:
    env = {**os.environ, "_VIOCLI_COMPLETE": "bash_complete", "COMP_WORDS": "viocli dep", "COMP_CWORD": "1"}
    result = subprocess.run(
        [sys.executable, "-c", "from viocli.cli.main import main; main()"], env=env, capture_output=True, text=True
    )
    assert "deployment" in result.stdout


def test_lab_status_when_no_lab_runs(viocli_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # read-only: any user
    result = CliRunner().invoke(cli, ["lab", "status"])
    assert result.exit_code == 0
    assert "the lab is not up" in result.stdout
    result = CliRunner().invoke(cli, ["lab", "up"])
    assert result.exit_code == 4 and "must run as root" in result.stderr


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert "viocli" in result.output


def test_json_output_of_validate_is_machine_readable(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["inventory", "validate", "-i", "inventory/ha.yml", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["valid"] is True and data["mode"] == "ha" and data["nodes"] == 9
