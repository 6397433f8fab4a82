"""One mutating operation per deployment at a time.

The lock is an ``flock`` on ``<state>/locks/<deployment>.lock``: the kernel releases it when its
holder dies, however it dies, so a crashed viocli never blocks the next one. The file also holds a
description of the holder (command, pid, user, start time) for the refusal message, and so the
next holder can tell that the previous one died mid-operation.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from viocli.errors import Refused


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a deployment's lock."""

    command: str
    pid: int
    user: str
    started_at: str

    def describe(self) -> str:
        return f"'{self.command}' (pid {self.pid}, user {self.user}, started {self.started_at})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeploymentLock:
    """Exclusive, crash-safe lock for one deployment."""

    def __init__(self, lock_dir: Path, deployment: str):
        self.path = lock_dir / f"{deployment}.lock"
        self.deployment = deployment
        self._fd: int | None = None
        self.taken_over: LockHolder | None = None

    def _read_holder(self) -> LockHolder | None:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
            return LockHolder(**json.loads(text)) if text else None
        except (OSError, ValueError, TypeError):
            return None

    def acquire(self, holder: LockHolder) -> DeploymentLock:
        """Take the lock or raise :class:`Refused` (exit 4) naming the current holder.

        If the previous holder died without releasing, its record is kept in ``taken_over``.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                current = self._read_holder()
                who = current.describe() if current else "another viocli process"
                raise Refused(
                    f"deployment {self.deployment!r} is busy: {who} holds its operation lock",
                    hint="wait for that operation to finish, then run this command again",
                ) from None
            if self._is_current(fd):
                break
            os.close(fd)  # its holder removed the file (remove()) before letting go: lock the new one
        self._fd = fd
        previous = self._read_holder()
        if previous is not None and previous.pid != holder.pid and not _pid_alive(previous.pid):
            self.taken_over = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode("utf-8"), 0)
        os.fsync(fd)
        return self

    def _is_current(self, fd: int) -> bool:
        """``fd`` is still the file at ``path`` (not one a previous holder removed)."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def remove(self) -> None:
        """Delete the lock file of a deployment that is gone, by the process holding its lock (which
        lets go afterwards). A process that opened the old file meanwhile sees it is gone and locks a
        new one: the lock stays exclusive."""
        holder = self._read_holder()
        if self._fd is None and (holder is None or holder.pid != os.getpid()):
            raise RuntimeError(f"the lock of {self.deployment} is not held by this process")
        self.path.unlink(missing_ok=True)

    def live_holder(self) -> LockHolder | None:
        """Who holds the lock now, if that process is alive (read-only: never takes the lock)."""
        holder = self._read_holder()
        return holder if holder is not None and _pid_alive(holder.pid) else None

    def release(self) -> None:
        """Clear the holder record and drop the lock."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DeploymentLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
