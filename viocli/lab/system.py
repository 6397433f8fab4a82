"""Small process and command helpers for the lab: run a command, start a daemon, stop it by pid.

A pid is always paired with the process's start time (from /proc), so a recycled pid is never
signalled: the lab only ever stops processes it started.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from viocli.errors import OperationFailed


def run(args: Sequence[str], *, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run a command; on failure raise OperationFailed with the command and its stderr."""
    result = subprocess.run(list(args), capture_output=True, text=True, input=input_text)
    if check and result.returncode != 0:
        raise OperationFailed(
            f"lab: `{' '.join(args)}` failed (exit {result.returncode}): {result.stderr.strip()[:500]}"
        )
    return result


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def running(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass(frozen=True)
class Daemon:
    """A background process the lab started."""

    pid: int
    started: int

    def alive(self) -> bool:
        return start_time(self.pid) == self.started


def spawn(argv: Sequence[str], log_file: Path, *, env: dict[str, str] | None = None) -> Daemon:
    """Start ``argv`` detached (own session), output to ``log_file``; return its pid and start time."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    started = start_time(process.pid)
    if started is None:
        code = process.wait()
        raise OperationFailed(f"lab: {argv[0]} exited at once (exit {code}); see {log_file}")
    return Daemon(process.pid, started)


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait for any process (not only a child) to exit, without polling: a pidfd becomes readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def stop(daemon: Daemon, *, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Stop a daemon the lab started: ``sig``, then SIGKILL after ``timeout``; reap it if it is our child."""
    if not daemon.alive():
        return
    try:
        os.kill(daemon.pid, sig)
    except ProcessLookupError:
        return
    if not wait_exit(daemon.pid, timeout) and daemon.alive():
        os.kill(daemon.pid, signal.SIGKILL)
        wait_exit(daemon.pid, 5.0)
    reap(daemon.pid)


def reap(pid: int | None) -> None:
    """Collect the exit status of a child that has ended (no zombie left behind); no-op otherwise."""
    if pid:
        with contextlib.suppress(ChildProcessError):
            wait_exit(pid, 5.0)
            os.waitpid(pid, os.WNOHANG)
