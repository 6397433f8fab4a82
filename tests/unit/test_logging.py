"""The full log: 0600, rotated at 7 files, secrets masked, nothing for users who cannot write it."""

from __future__ import annotations

import logging
import stat
import sys
from pathlib import Path

from viocli import logsetup
from viocli.redact import REDACTOR


def test_log_is_private_rotated_at_seven_files_and_redacted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(logsetup, "MAX_BYTES", 2000)
    log_file = tmp_path / "log" / "viocli.log"
    assert logsetup.setup_logging(log_file) == log_file
    handler = next(h for h in logsetup.get_logger().handlers if isinstance(h, logging.FileHandler))
    assert (handler.maxBytes, handler.backupCount) == (2000, 6)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    REDACTOR.add(["Top-Secret-Value-99"])
    for index in range(400):
        logsetup.get_logger().info("line %d carries Top-Secret-Value-99 and padding %s", index, "x" * 40)
    files = sorted(log_file.parent.iterdir())
    assert len(files) == 7, files
    text = "".join(p.read_text() for p in files)
    assert "Top-Secret-Value-99" not in text
    assert "carries ******** and padding" in text


def test_production_limits() -> None:
    assert logsetup.MAX_BYTES == 100 * 1024 * 1024
    assert logsetup.BACKUP_COUNT + 1 == 7


def test_unwritable_log_is_skipped_quietly(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert logsetup.setup_logging(blocker / "sub" / "viocli.log") is None
    logsetup.get_logger().error("goes nowhere, and not to stderr")
    assert capsys.readouterr().err == ""


FORGED = "2026-01-01 00:00:00,000 1 INFO forged: secrets rotated by admin"


def _records(log_file: Path) -> list[str]:
    return log_file.read_text(encoding="utf-8").splitlines()


def test_an_argument_cannot_forge_a_log_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["viocli", "deployment", "create", "-d", f"x\n{FORGED}", "--note", "a b"])
    log_file = tmp_path / "viocli.log"
    logsetup.setup_logging(log_file)
    lines = _records(log_file)
    assert len(lines) == 1, lines
    assert not any(line.startswith("2026-01-01") for line in lines)
    assert f"start: viocli deployment create -d 'x\\n{FORGED}' --note 'a b' (user " in lines[0]


def test_control_characters_in_a_message_are_escaped_after_redaction(tmp_path: Path) -> None:
    log_file = tmp_path / "viocli.log"
    logsetup.setup_logging(log_file)
    REDACTOR.add(["multi\nline-Secret-42"])
    logger = logsetup.get_logger()
    logger.info("value %s", "a\rb\x1b[2Jc\td\u2028e\x85f")
    logger.info("secret %s", "multi\nline-Secret-42")
    lines = _records(log_file)[1:]
    assert [line.split(" INFO ", 1)[1] for line in lines] == [
        "value a\\rb\\x1b[2Jc\\td\\u2028e\\x85f",
        "secret ********",
    ]


def test_a_traceback_keeps_its_lines_but_none_can_pass_for_a_record(tmp_path: Path) -> None:
    log_file = tmp_path / "viocli.log"
    logsetup.setup_logging(log_file)
    REDACTOR.add(["Trace-Secret-77"])
    try:
        raise ValueError(f"bad value Trace-Secret-77\n{FORGED}\x1b[2J")
    except ValueError:
        logsetup.get_logger().exception("operation failed")
    lines = _records(log_file)[1:]
    assert lines[0].endswith(" ERROR operation failed")
    assert len(lines) > 3 and all(line.startswith("  ") for line in lines[1:]), lines
    text = "\n".join(lines)
    assert "Trace-Secret-77" not in text and "\x1b" not in text
    assert f"\n  {FORGED}\\x1b[2J" in text


def test_the_console_report_escapes_control_characters(capsys) -> None:
    from viocli.cli.report import report_error
    from viocli.errors import OperationFailed

    report_error(OperationFailed("task \x1b[2Jfailed", details=["first\nsecond \x1b]0;title\x07"], hint="retry"))
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "viocli: error: task \\x1b[2Jfailed\n  first\nsecond \\x1b]0;title\\x07\n  hint: retry\n" in err
