"""The malformed-inventory corpus: every file must be rejected with exit 2, located and explained.

Each ``tests/inventories/malformed/NN-name.yml`` is a valid example inventory with one deliberate
defect (a few carry two, to show that every problem is reported at once). Its leading comments say
what the output must contain::

    # expect: <substring of the output>      (one or more)
    # line: <N>                               (the output must contain ":<N>:")

For a custom.yml case, the defect is in ``custom-files/NN-*.yml`` and ``# line:`` is its line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from viocli.cli.main import cli
from viocli.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "inventories" / "malformed"
FILES = sorted(CORPUS.glob("*.yml"), key=lambda path: int(path.name.split("-")[0]))
# The lab inventories point at the lab's CA, which exists once the lab is up: tests/lab checks them.
EXAMPLES = sorted(p for p in (REPO / "inventory").glob("*.yml") if not p.name.startswith(("lab-", "custom")))
MIN_FILES = 99

EXPECT_RE = re.compile(r"^# expect: (?P<text>.+?)\s*$")
LINE_RE = re.compile(r"^# line: (?P<line>\d+)\s*$")
RAW_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
NAME_RE = re.compile(r"^\d{2,3}-[a-z0-9]+(-[a-z0-9]+)*\.yml$")


def header(path: Path) -> tuple[list[str], int | None]:
    """The ``# expect:`` substrings and the ``# line:`` number of a corpus file's leading comments."""
    expects: list[str] = []
    line: int | None = None
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.startswith("#"):
            break
        if match := EXPECT_RE.match(text):
            expects.append(match["text"])
        elif match := LINE_RE.match(text):
            line = int(match["line"])
    return expects, line


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Point viocli's state dir, log file and config file into empty tmp directories."""
    state_dir = tmp_path / "state"
    log_dir = tmp_path / "log"
    config_dir = tmp_path / "etc"
    for directory in (state_dir, log_dir, config_dir):
        directory.mkdir()
    monkeypatch.setenv("VIOCLI_STATE_DIR", str(state_dir))
    monkeypatch.setenv("VIOCLI_LOG_FILE", str(log_dir / "viocli.log"))
    monkeypatch.setenv("VIOCLI_CONFIG", str(config_dir / "viocli.conf"))
    monkeypatch.delenv("VIOCLI_DEPLOYMENT", raising=False)
    load_settings.cache_clear()
    yield [state_dir, log_dir, config_dir]
    load_settings.cache_clear()


def validate(path: Path, *extra: str) -> Result:
    return CliRunner().invoke(cli, ["inventory", "validate", "-i", str(path), *extra])


def assert_no_crash(result: Result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def assert_nothing_written(directories: list[Path]) -> None:
    for directory in directories:
        assert not any(directory.iterdir()), f"validate wrote into {directory}: {sorted(directory.iterdir())}"


def test_corpus_is_complete() -> None:
    assert len(FILES) >= MIN_FILES, f"only {len(FILES)} malformed inventories in {CORPUS}"
    for path in FILES:
        assert NAME_RE.match(path.name), f"{path.name}: name it NN-short-name.yml"
        expects, line = header(path)
        assert expects, f"{path.name}: no '# expect:' line"
        assert line is not None and line >= 1, f"{path.name}: no '# line: N' line"
    numbers = [path.name.split("-")[0] for path in FILES]
    assert len(set(numbers)) == len(numbers), "two corpus files share a number"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_examples_the_corpus_derives_from_are_valid(path: Path, sandbox: list[Path]) -> None:
    result = validate(path)
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    assert_nothing_written(sandbox)


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_malformed_inventory_is_rejected(path: Path, sandbox: list[Path]) -> None:
    expects, line = header(path)
    before = sorted(CORPUS.rglob("*"))
    result = validate(path)
    assert_no_crash(result)
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}"
    for text in expects:
        assert text in result.output, f"missing {text!r} in:\n{result.output}"
    assert f":{line}:" in result.output, f"no problem located at line {line} in:\n{result.output}"
    assert not RAW_CONTROL_RE.search(result.output), "a control character from the file reached the output"
    assert "error:" in result.stderr, "problems go to stderr"
    assert_nothing_written(sandbox)
    assert sorted(CORPUS.rglob("*")) == before, "validate created files next to the inventory"


def test_json_format_lists_located_problems(sandbox: list[Path]) -> None:
    path = CORPUS / "13-unknown-vcenter-key.yml"
    _, line = header(path)
    result = validate(path, "--format", "json")
    assert_no_crash(result)
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["file"] == str(path)
    problems = report["problems"]
    assert len(problems) == 2
    assert all(isinstance(problem["line"], int) for problem in problems)
    assert all(problem["severity"] == "error" for problem in problems)
    unknown = next(problem for problem in problems if problem["key"] == "vcenter.datastorez")
    assert unknown["line"] == line
    assert "did you mean 'datastores'" in unknown["message"]
    assert_nothing_written(sandbox)
