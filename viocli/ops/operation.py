"""A mutating operation: the deployment's lock, an operation-history row, and its outcome."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from viocli.errors import EXIT_FAILED, ViocliError
from viocli.logsetup import get_logger
from viocli.settings import Settings
from viocli.state.lock import DeploymentLock, LockHolder
from viocli.state.store import StateStore, now


def invoking_user() -> str:
    """The operator behind sudo if any, else the current user."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@dataclass
class Operation:
    """Handle given to the body of an operation."""

    id: int
    deployment: str
    command: str
    store: StateStore
    note: str | None = None  # what the history keeps of a success (e.g. what was recovered and why)


def _noted(message: str, note: str | None) -> str:
    return f"{message} ({note})" if note else message


@contextmanager
def operation(settings: Settings, deployment: str, command: str) -> Iterator[Operation]:
    """Hold ``deployment``'s lock and record ``command`` in the history for the duration.

    A second mutating command is refused (exit 4) naming the holder. A lock left by a process that
    died is taken over, and that process's operation is marked interrupted.
    """
    log = get_logger()
    store = StateStore.open_writable(settings.db_path)
    holder = LockHolder(command=command, pid=os.getpid(), user=invoking_user(), started_at=now())
    lock = DeploymentLock(settings.state_dir / "locks", deployment).acquire(holder)
    try:
        if lock.taken_over is not None:
            previous = lock.taken_over
            store.mark_interrupted(deployment, previous.pid)
            store.fail_unfinished_backups(deployment, f"interrupted: {previous.describe()} ended without finishing")
            message = (
                f"viocli: note: the previous operation {previous.describe()} on {deployment} ended without "
                "finishing; taking over its lock"
            )
            sys.stderr.write(message + "\n")
            log.warning("%s", message)
        operation_id = store.start_operation(deployment, command, holder.user, holder.pid)
        log.info("operation %d: %s on %s", operation_id, command, deployment)
        handle = Operation(operation_id, deployment, command, store)
        try:
            yield handle
        except ViocliError as error:
            store.finish_operation(operation_id, "failed", error.exit_code, _noted(error.message, handle.note))
            raise
        except BaseException as error:
            message = f"{type(error).__name__}: {error}"
            store.finish_operation(operation_id, "failed", EXIT_FAILED, _noted(message, handle.note))
            raise
        else:
            store.finish_operation(operation_id, "succeeded", 0, handle.note)
    finally:
        lock.release()
        store.close()
