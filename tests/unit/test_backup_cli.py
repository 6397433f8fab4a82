"""The backup commands' input: the passphrase never on argv, bad names and targets are bad input."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from viocli.cli.main import cli


def test_there_is_no_passphrase_option_only_a_file_or_the_terminal(viocli_env, monkeypatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = CliRunner().invoke(cli, ["backup", "mgmt_server", "/srv/b", "--passphrase", "x"])
    assert result.exit_code == 2 and "No such option '--passphrase'" in result.output
    result = CliRunner().invoke(cli, ["backup", "mgmt_server", "/srv/b"], input="")
    assert result.exit_code == 2
    assert "--passphrase-file FILE, or run this on a terminal" in result.stderr


def test_a_short_passphrase_is_refused(viocli_env, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    short = tmp_path / "pp"
    short.write_text("short\n")
    result = CliRunner().invoke(cli, ["backup", "mgmt_server", "/srv/b", "--passphrase-file", str(short)])
    assert result.exit_code == 2 and "at least 12 characters" in result.stderr


def test_restoring_a_name_that_is_no_backup_is_bad_input_and_touches_nothing(viocli_env, monkeypatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = CliRunner().invoke(cli, ["restore", "openstack_db", "vio_ms_20260101000000", "/srv/b", "--yes"])
    assert result.exit_code == 2 and "is a mgmt_server backup, not a openstack_db one" in result.stderr
    assert not (viocli_env / "state" / "viocli.db").exists()
