"""The full log: 0600, rotated at 7 files, secrets masked, nothing for users who cannot write it."""

from __future__ import annotations

import logging
import stat
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
