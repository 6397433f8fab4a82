"""How a failed command tells the operator what happened: one clear line, then details and the log."""

from __future__ import annotations

import sys

from viocli.errors import NotLanded, ViocliError


def report_error(error: ViocliError) -> None:
    """Print an error to stderr: the line, the details, the hint and the log path.

    Secrets are masked, and control characters escaped (a detail may quote a remote message or
    a file), so nothing printed can drive the terminal.
    """
    from viocli.logsetup import active_log_file, escape_controls, redact_text

    lines = [f"viocli: error: {error.message}"]
    lines.extend(f"  {detail}" for detail in error.details)
    if error.hint:
        lines.append(f"  hint: {error.hint}")
    log_file = active_log_file()
    if log_file is not None and not isinstance(error, NotLanded):
        lines.append(f"  log: {log_file}")
    sys.stderr.write(escape_controls(redact_text("\n".join(lines)), keep_newlines=True) + "\n")
    from viocli.logsetup import get_logger

    get_logger().error("%s", error.message)
