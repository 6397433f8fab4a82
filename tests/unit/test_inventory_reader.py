"""The YAML reader behind the inventory and custom.yml: whatever file it is given, it answers
at once with exit 2 and one clear located message, and never echoes what the file holds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from viocli.cli.main import cli
from viocli.inventory import source

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "inventory"
RAW_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
SHADOW = (
    "root:$6$Sa1tSa1t$Q2hhbmdlTWVQbGVhc2VUaGlzSXNBSGFzaA:20228:0:99999:7:::\n"
    "daemon:*:20228:0:99999:7:::\n"
    "vio:$y$j9T$c2VjcmV0c2VjcmV0$SGFzaEhhc2hIYXNoSGFzaA:20228:0:99999:7:::\n"
)
HASHES = ["$6$Sa1tSa1t", "Q2hhbmdl", "$y$j9T", "SGFzaEhh"]


def validate(path: Path | str, *extra: str) -> Result:
    result = CliRunner().invoke(cli, ["inventory", "validate", "-i", str(path), *extra])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not RAW_CONTROL_RE.search(result.output), f"raw control character in output: {result.output!r}"
    return result


def problem_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("  ") and ": error: " in line]


def validate_in_a_process(path: Path | str) -> subprocess.CompletedProcess:
    """Run the real CLI with a deadline: a reader that blocks fails the test instead of hanging it."""
    return subprocess.run(
        [sys.executable, "-m", "viocli", "inventory", "validate", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=REPO,
    )


def test_a_fifo_is_refused_at_once(tmp_path: Path, viocli_env: Path) -> None:
    fifo = tmp_path / "inventory.yml"
    os.mkfifo(fifo)
    done = validate_in_a_process(fifo)
    assert done.returncode == 2, done.stderr
    assert f"{fifo}: error: the inventory file is a FIFO (named pipe), not a regular file" in done.stderr


def test_a_device_is_refused_at_once(viocli_env: Path) -> None:
    done = validate_in_a_process("/dev/zero")
    assert done.returncode == 2, done.stderr
    assert "/dev/zero: error: the inventory file is a character device, not a regular file" in done.stderr


def test_a_50_mb_file_is_refused_in_well_under_a_second(tmp_path: Path, viocli_env: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_bytes(b"name: '" + b"A" * (50 * 1024 * 1024) + b"'\n")
    started = time.monotonic()
    result = validate(big)
    assert time.monotonic() - started < 0.5
    assert result.exit_code == 2
    assert f"the inventory file has {big.stat().st_size} bytes, more than the 1 MiB limit" in result.stderr
    assert "AAAA" not in result.output


def test_a_file_that_grows_past_the_limit_after_the_check_is_cut(tmp_path: Path, monkeypatch) -> None:
    # The size is checked before reading and on the open descriptor; reading stops at limit + 1 anyway.
    grown = tmp_path / "grown.yml"
    grown.write_bytes(b"x" * 100)
    monkeypatch.setattr(source, "_check_stat", lambda info, limit: None)
    with pytest.raises(source.UnreadableFile, match="more than the 64 bytes limit"):
        source.read_regular_file(grown, limit=64)


def test_a_billion_laughs_alias_bomb_is_refused_fast(tmp_path: Path, viocli_env: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name in "bcdefghi":
        previous = chr(ord(name) - 1)
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")
    bomb = tmp_path / "bomb.yml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 400
    started = time.monotonic()
    result = validate(bomb)
    assert time.monotonic() - started < 1
    assert result.exit_code == 2
    assert problem_lines(result) == [
        f"  {bomb}:1:4: error: YAML anchors and aliases (&name, *name) are not accepted here; "
        "write each value out in full"
    ]


def test_an_alias_alone_is_refused_where_it_is(tmp_path: Path, viocli_env: Path) -> None:
    path = tmp_path / "alias.yml"
    path.write_text("name: vio\nmode: *m\n")
    result = validate(path)
    assert result.exit_code == 2
    assert f"{path}:2:7: error: YAML anchors and aliases" in result.stderr


@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ("{a: ", "}")], ids=["lists", "mappings"])
def test_deep_nesting_is_one_clear_error(opening: str, closing: str, tmp_path: Path, viocli_env: Path) -> None:
    path = tmp_path / "deep.yml"
    path.write_text(opening * 10000 + closing * 10000)
    result = validate(path)
    assert result.exit_code == 2
    assert len(problem_lines(result)) == 1
    assert "error: the YAML nests more than 64 levels deep; is this the right file?" in result.stderr


def test_an_unclosed_deep_nesting_is_one_clear_error(tmp_path: Path, viocli_env: Path) -> None:
    path = tmp_path / "deep.yml"
    path.write_text("[" * 10000)
    result = validate(path)
    assert result.exit_code == 2
    assert len(problem_lines(result)) == 1


def test_a_recursion_error_is_still_a_clear_error(tmp_path: Path, viocli_env: Path, monkeypatch) -> None:
    # Were the depth limit ever raised too far, Python's own recursion limit must not become a traceback.
    monkeypatch.setattr(source, "MAX_DEPTH", 10**9)
    path = tmp_path / "deep.yml"
    path.write_text("[" * 5000 + "]" * 5000)
    result = validate(path)
    assert result.exit_code == 2
    assert "error: the YAML nests too deeply to read (the limit is" in result.stderr


def test_a_shadow_file_is_not_an_inventory_and_is_not_printed(tmp_path: Path, viocli_env: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    for extra in ((), ("--format", "json")):
        result = validate(shadow, *extra)
        assert result.exit_code == 2
        assert not any(secret in result.output for secret in HASHES), result.output
        assert "root:" not in result.output and "daemon" not in result.output
    result = validate(shadow)
    assert problem_lines(result) == [
        f"  {shadow}:1:1: error: this is not a viocli inventory: none of its top-level keys is an inventory key "
        "(name, mode, ssh_user, vcenter, networks, vips, roles, compute_clusters, backup, external_tls, internal_tls, "
        "openstack, custom_file); start from inventory/ha.yml, compact.yml or tiny.yml"
    ]


def test_the_real_shadow_file_is_not_printed(viocli_env: Path) -> None:
    shadow = Path("/etc/shadow")
    if not os.access(shadow, os.R_OK):
        pytest.skip("needs root to read /etc/shadow")
    result = validate(shadow)
    assert result.exit_code == 2
    assert len(problem_lines(result)) == 1
    for line in shadow.read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 1 and len(fields[1]) > 2:
            assert fields[1] not in result.output


def _inventory_with(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text((EXAMPLES / "tiny.yml").read_text() + extra)
    return path


def test_an_unknown_key_that_is_not_a_plain_name_is_not_quoted(tmp_path: Path, viocli_env: Path) -> None:
    path = _inventory_with(tmp_path, "root:$6$Sa1tSa1t$Q2hhbmdl:20228:0:99999:7:\n")
    result = validate(path)
    assert result.exit_code == 2
    line = len(path.read_text().splitlines())
    assert f"{path}:{line}:1: error: an unknown key; expected one of: backup, compute_clusters" in result.stderr
    assert not any(secret in result.output for secret in HASHES), result.output
    report = json.loads(validate(path, "--format", "json").stdout)
    assert [(p["key"], p["line"], p["column"]) for p in report["problems"]] == [("", line, 1)]


def test_a_plain_unknown_key_is_still_named_with_a_suggestion(tmp_path: Path, viocli_env: Path) -> None:
    result = validate(_inventory_with(tmp_path, "bakup: {}\n"))
    assert result.exit_code == 2
    assert "bakup: unknown key 'bakup'; did you mean 'backup'?" in result.stderr


def test_an_escape_sequence_in_a_key_is_shown_escaped(tmp_path: Path, viocli_env: Path) -> None:
    path = _inventory_with(tmp_path, 'vcenter_x: {"\\e[2J\\e[31mfake": 1}\n')
    result = validate(path)
    assert result.exit_code == 2
    assert "\x1b" not in result.output
    assert "an unknown key" in result.stderr or "unknown key 'vcenter_x'" in result.stderr


def test_a_duplicate_key_that_is_not_a_plain_name_is_not_quoted(tmp_path: Path, viocli_env: Path) -> None:
    path = tmp_path / "dup.yml"
    path.write_text('"\\e]0;pwned\\a$6$Sa1tSa1t": 1\n"\\e]0;pwned\\a$6$Sa1tSa1t": 2\n')
    result = validate(path)
    assert result.exit_code == 2
    assert f"{path}:2:1: error: duplicate key (first set on line 1)" in result.stderr
    assert "$6$" not in result.output


def test_a_huge_value_is_quoted_short_and_escaped(tmp_path: Path, viocli_env: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "tiny.yml").read_text())
    data["name"] = "\x1b[31m" + "A" * 500_000
    path = tmp_path / "huge.yml"
    path.write_text(yaml.safe_dump(data))
    result = validate(path)
    assert result.exit_code == 2
    assert "name: '\\x1b[31mAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'… contains a control character" in result.stderr
    assert len(result.output) < 1000


def test_a_huge_number_is_quoted_short(tmp_path: Path, viocli_env: Path) -> None:
    path = _inventory_with(tmp_path, "")
    path.write_text(path.read_text().replace("  port: 443", "  port: " + "9" * 100_000))
    result = validate(path)
    assert result.exit_code == 2
    assert "cannot read the value '9999999999999999999999999999999999999999'…" in result.stderr
    assert len(result.output) < 1000


def test_a_file_that_is_not_utf8_is_refused_without_quoting_it(tmp_path: Path, viocli_env: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("name: caf\u00e9-secret\n".encode("latin-1"))
    result = validate(path)
    assert result.exit_code == 2
    assert "error: the inventory file is not UTF-8 text (byte 10 is not valid UTF-8); save it as UTF-8" in result.stderr
    assert "secret" not in result.output


def test_a_raw_control_character_in_the_file_is_located(tmp_path: Path, viocli_env: Path) -> None:
    path = tmp_path / "esc.yml"
    path.write_text("name: vio\nmode: 'ha\x1b[2J'\n")
    result = validate(path)
    assert result.exit_code == 2
    assert f"{path}:2:10: error: the inventory file contains U+001B, which YAML does not allow" in result.stderr


def test_a_missing_file_says_so(tmp_path: Path, viocli_env: Path) -> None:
    result = validate(tmp_path / "nope.yml")
    assert result.exit_code == 2
    assert "error: the inventory file was not found" in result.stderr


def test_custom_yml_goes_through_the_same_reader(tmp_path: Path, viocli_env: Path) -> None:
    (tmp_path / "custom.yml").write_text("a: &x 1\nb: *x\n")
    path = _inventory_with(tmp_path, "custom_file: custom.yml\n")
    result = validate(path)
    assert result.exit_code == 2
    assert f"{tmp_path / 'custom.yml'}:1:4: error: YAML anchors and aliases" in result.stderr


def test_a_custom_yml_key_that_is_not_a_variable_is_quoted_escaped(tmp_path: Path, viocli_env: Path) -> None:
    (tmp_path / "custom.yml").write_text('"bad\\nkey": 1\n')
    result = validate(_inventory_with(tmp_path, "custom_file: custom.yml\n"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'custom.yml'}:1:1: error: 'bad\\nkey' is not a valid Ansible variable name" in result.stderr
