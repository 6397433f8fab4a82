"""The full log: ``/var/log/viocli/viocli.log``, rotated at 7 files of 100 MB, every secret masked."""

from __future__ import annotations

import getpass
import logging
import os
import shlex
import sys
from pathlib import Path

from viocli.redact import REDACTOR

LOGGER_NAME = "viocli"
MAX_BYTES = 100 * 1024 * 1024
BACKUP_COUNT = 6  # the live file plus 6 rotated ones: 7 files

_active_log_file: Path | None = None
_configured = False


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control and other non-printable characters escaped (``\\n``, ``\\x1b``, ``\\u2028``).

    Whatever a value holds, it then cannot start a new (forged) line, rewrite the current one
    (``\\r``) or drive a terminal (escape sequences). ``keep_newlines`` keeps ``\\n`` itself, for
    text that is meant to span lines.
    """
    if text.isprintable():
        return text
    if keep_newlines:
        return "\n".join(escape_controls(line) for line in text.split("\n"))
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class RedactingFilter(logging.Filter):
    """Masks secrets in the fully formatted message before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = REDACTOR.text(message)
        record.args = None
        return True


class EscapingFormatter(logging.Formatter):
    """One record, one line: the message's control characters are escaped (after redaction).

    A traceback or stack keeps its lines, each redacted, escaped and indented, so that no line of
    the log can pass for the start of another record.
    """

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        # Not record.exc_text: another handler may have cached it there unescaped.
        exc_text = self.formatException(record.exc_info) if record.exc_info else record.exc_text
        if exc_text:
            text += "\n" + _indented(exc_text)
        if record.stack_info:
            text += "\n" + _indented(self.formatStack(record.stack_info))
        return text


def _indented(text: str) -> str:
    return "\n".join("  " + escape_controls(line) for line in REDACTOR.text(text).split("\n"))


def get_logger() -> logging.Logger:
    """The viocli logger (writes nothing until :func:`setup_logging` found a writable log file)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        # Without a handler, logging's last resort would print to stderr.
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


def setup_logging(log_file: Path) -> Path | None:
    """Open the rotating log file if this user may write it; return its path or None.

    Read-only commands run by ordinary users cannot write under /var/log; they simply do not log.
    """
    global _active_log_file, _configured
    from logging.handlers import RotatingFileHandler

    logger = get_logger()
    if _configured:
        return _active_log_file
    _configured = True
    logger.setLevel(logging.DEBUG)
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        old_umask = os.umask(0o077)
        try:
            handler = RotatingFileHandler(log_file, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8")
        finally:
            os.umask(old_umask)
    except OSError:
        return None
    handler.setFormatter(EscapingFormatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    _active_log_file = log_file
    try:
        user = os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    logger.info("start: %s (user %s)", shlex.join(["viocli", *sys.argv[1:]]), user)
    return log_file


def active_log_file() -> Path | None:
    """The log file this process writes to, if any."""
    return _active_log_file


def redact_text(text: str) -> str:
    """Mask every known secret in a string (for anything printed to the console)."""
    return REDACTOR.text(text)
