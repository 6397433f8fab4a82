"""The state store and the per-deployment operation lock, with real processes."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from viocli.errors import Refused
from viocli.ops.operation import operation
from viocli.settings import load_settings
from viocli.state.lock import DeploymentLock, LockHolder
from viocli.state.store import StateStore

HOLDER = textwrap.dedent(
    """
    import sys, time
    from viocli.settings import load_settings
    from viocli.ops.operation import operation
    with operation(load_settings(), "vio", "deployment configure") as op:
        print("HELD", flush=True)
        time.sleep(120)
    """
)


def _start_holder() -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "HELD"
    return process


def test_store_is_world_readable_and_holds_history(viocli_env) -> None:
    settings = load_settings()
    store = StateStore.open_writable(settings.db_path)
    assert stat.S_IMODE(settings.db_path.stat().st_mode) == 0o644
    store.register_deployment("vio", Path("/etc/viocli/vio.yml"), "ha")
    op = store.start_operation("vio", "deployment configure", "alice", 123)
    store.finish_operation(op, "succeeded", 0)
    backup = store.start_backup("vio", "vio_os_db_20260101000000", "openstack_db", "h:/b")
    store.finish_backup(backup, "complete", size_bytes=10, checksum="abc")
    reader = StateStore.open_readonly(settings.db_path)
    assert reader is not None
    (record,) = reader.operations("vio")
    assert (record.command, record.user, record.result, record.exit_code) == (
        "deployment configure",
        "alice",
        "succeeded",
        0,
    )
    assert record.ended_at is not None
    assert reader.backups("vio")[0].status == "complete"
    assert reader.deployment("vio").inventory_path == Path("/etc/viocli/vio.yml")


def test_readonly_open_of_missing_store_is_none(tmp_path: Path) -> None:
    assert StateStore.open_readonly(tmp_path / "none.db") is None


def test_operation_records_success_and_failure(viocli_env) -> None:
    settings = load_settings()
    with operation(settings, "vio", "deployment configure"):
        pass
    with pytest.raises(Refused), operation(settings, "vio", "deployment start"):
        raise Refused("precondition")
    store = StateStore.open_readonly(settings.db_path)
    results = [(r.command, r.result, r.exit_code) for r in store.operations("vio")]
    assert results == [("deployment start", "failed", 4), ("deployment configure", "succeeded", 0)]


def test_second_mutating_command_is_refused_naming_the_holder(viocli_env) -> None:
    holder = _start_holder()
    try:
        with pytest.raises(Refused) as caught, operation(load_settings(), "vio", "backup openstack_db"):
            pass
        message = caught.value.message
        assert caught.value.exit_code == 4
        assert "'deployment configure'" in message
        assert f"pid {holder.pid}" in message
        assert "started 20" in message  # the start time
        # Another deployment is not blocked.
        with operation(load_settings(), "other", "deployment configure"):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_dead_process_is_taken_over(viocli_env, capsys: pytest.CaptureFixture) -> None:
    holder = _start_holder()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with operation(load_settings(), "vio", "deployment configure"):
        pass
    assert time.monotonic() - started < 5
    assert "ended without finishing; taking over its lock" in capsys.readouterr().err
    store = StateStore.open_readonly(load_settings().db_path)
    dead = [r for r in store.operations("vio") if r.pid == holder.pid]
    assert [r.result for r in dead] == ["interrupted"]


def test_a_lock_file_removed_by_its_holder_is_never_locked_by_a_late_comer(viocli_env, monkeypatch) -> None:
    # deployment destroy deletes the lock file while holding it. A process that opened the old file
    # just before must not lock that orphan while a third one locks the new file: it retries.
    lock_dir = load_settings().state_dir / "locks"
    holder = LockHolder(command="deployment destroy", pid=os.getpid(), user="root", started_at="now")
    first = DeploymentLock(lock_dir, "vio").acquire(holder)
    real_flock = fcntl.flock
    raced: list[int] = []

    def holder_leaves_first(fd: int, operation: int) -> None:
        if not raced:  # the late comer opened the file while `first` held it; now `first` finishes
            raced.append(fd)
            first.remove()
            first.release()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", holder_leaves_first)
    late = DeploymentLock(lock_dir, "vio").acquire(replace(holder, command="deployment create"))
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert raced and late.path.exists()
    assert json.loads(late.path.read_text())["command"] == "deployment create"
    with pytest.raises(Refused, match="'deployment create'"):
        DeploymentLock(lock_dir, "vio").acquire(replace(holder, command="deployment start"))
    late.release()
    with pytest.raises(RuntimeError, match="not held"):
        DeploymentLock(lock_dir, "vio").remove()
