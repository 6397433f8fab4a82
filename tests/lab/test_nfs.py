"""The lab's NFS server (nfs-ganesha, NFSv4, no root squash) and viocli's libnfs client, for real.

Needs root, nfs-ganesha with its VFS FSAL, and libnfs13. Each server listens on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from viocli.backup.target import open_target, preflight
from viocli.errors import BadInput, OperationFailed, Refused
from viocli.lab import nfs_server
from viocli.nfs import NfsVolume
from viocli.nfs.client import LIBRARY, PARTIAL_MARK


def _have_libnfs() -> bool:
    try:
        ctypes.CDLL(LIBRARY)
    except OSError:
        return False
    return True


pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="ganesha needs root"),
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="nfs-ganesha is not installed"),
    pytest.mark.skipif(not _have_libnfs(), reason="libnfs13 is not installed"),
]

MB = 1_000_000
STREAM_SIZE = 50 * MB


def free_port() -> int:
    """A TCP port nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GeneratedStream:
    """A readable stream of ``size`` pseudo-random bytes, generated as read (never held whole)."""

    def __init__(self, size: int, seed: int = 7, fail_after: int | None = None):
        self.remaining = size
        self.random = random.Random(seed)
        self.sha256 = hashlib.sha256()
        self.fail_after = fail_after
        self.produced = 0

    def read(self, count: int = -1) -> bytes:
        if self.fail_after is not None and self.produced >= self.fail_after:
            raise RuntimeError("the database dump died")
        count = self.remaining if count < 0 else min(count, self.remaining)
        data = self.random.randbytes(count)
        self.remaining -= count
        self.produced += count
        self.sha256.update(data)
        return data


class HashingSink:
    """A writable sink that keeps only the sha256 and the length of what it is given."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nfs_server.NfsServerHandle]:
    """One ganesha for the module, exporting a fresh directory."""
    root = tmp_path_factory.mktemp("nfs")
    handle = nfs_server.start(root / "lab", root / "export", "127.0.0.1", free_port())
    yield handle
    nfs_server.stop(handle)
    assert not Path(f"/proc/{handle.pid}").exists()  # gone and reaped, no zombie


@pytest.fixture
def volume(server: nfs_server.NfsServerHandle) -> Iterator[NfsVolume]:
    """The server's export through viocli's client, in a directory of its own per test."""
    with NfsVolume.parse(server.export_spec, port=server.port) as root:
        name = f"t{time.monotonic_ns()}"
        root.mkdir(name)
    with NfsVolume.parse(f"{server.export_spec}/{name}", port=server.port) as volume:
        yield volume


def test_start_serves_nfsv4_export(server: nfs_server.NfsServerHandle) -> None:
    assert nfs_server.is_running(server)
    assert server.export_spec == "127.0.0.1:/vio_backup"
    config = server.config_path.read_text()
    for line in ("Protocols = 4;", "Squash = No_Root_Squash;", "SecType = sys;", "Name = VFS;", "Graceless = true;"):
        assert line in config
    assert str(server.lab_dir / "ganesha-recovery") in config
    assert server.pid_file.read_text().strip() == str(server.pid)
    assert "DBUS :CRIT" not in server.log_path.read_text()


def test_stream_50mb_round_trip(volume: NfsVolume, server: nfs_server.NfsServerHandle) -> None:
    source = GeneratedStream(STREAM_SIZE)
    started = time.monotonic()
    written = volume.write_stream("backup.bin", source)
    write_seconds = time.monotonic() - started
    assert written == STREAM_SIZE
    assert volume.size("backup.bin") == STREAM_SIZE

    sink = HashingSink()
    started = time.monotonic()
    read = volume.read_stream("backup.bin", sink)
    read_seconds = time.monotonic() - started
    assert read == sink.size == STREAM_SIZE
    assert sink.sha256.hexdigest() == source.sha256.hexdigest()
    print(f"\nNFS write {STREAM_SIZE / MB / write_seconds:.1f} MB/s, read {STREAM_SIZE / MB / read_seconds:.1f} MB/s")


def test_write_from_a_pipe(volume: NfsVolume, server: nfs_server.NfsServerHandle) -> None:
    producer = subprocess.Popen(["head", "-c", str(5 * MB), "/dev/urandom"], stdout=subprocess.PIPE)
    assert producer.stdout is not None
    with producer.stdout:
        written = volume.write_stream("piped.bin", producer.stdout)
    assert producer.wait() == 0
    assert written == 5 * MB
    on_server = next(server.export_dir.rglob("piped.bin"))
    sink = HashingSink()
    volume.read_stream("piped.bin", sink)
    assert sink.sha256.hexdigest() == hashlib.sha256(on_server.read_bytes()).hexdigest()


def test_list_mkdir_remove_rmdir(volume: NfsVolume) -> None:
    assert volume.listdir() == []
    volume.mkdir("dir")
    volume.mkdir("a/b/c", parents=True)
    volume.mkdir("dir", exist_ok=True)
    assert volume.write_stream("dir/one.txt", io.BytesIO(b"one")) == 3
    assert volume.write_stream("two.txt", io.BytesIO(b"")) == 0
    assert volume.listdir() == ["a", "dir", "two.txt"]
    assert volume.listdir("dir") == ["one.txt"]
    assert volume.listdir("a/b") == ["c"]
    assert volume.exists("dir/one.txt") and volume.is_dir("dir") and not volume.is_dir("two.txt")
    assert not volume.exists("nothing")
    assert volume.size("dir/one.txt") == 3

    sink = io.BytesIO()
    assert volume.read_stream("dir/one.txt", sink) == 3 and sink.getvalue() == b"one"

    with pytest.raises(OperationFailed, match="already exists"):
        volume.write_stream("dir/one.txt", io.BytesIO(b"again"))
    assert volume.write_stream("dir/one.txt", io.BytesIO(b"again"), overwrite=True) == 5
    with pytest.raises(OperationFailed, match="not empty") as failed:
        volume.rmdir("dir")
    assert "rmdir /dir on 127.0.0.1:/vio_backup/" in failed.value.message
    with pytest.raises(OperationFailed, match="is a directory"):
        volume.remove("dir")
    with pytest.raises(OperationFailed, match="not a directory"):
        volume.rmdir("two.txt")
    with pytest.raises(OperationFailed, match="No such file"):
        volume.read_stream("nothing", io.BytesIO())

    volume.remove("dir/one.txt")
    volume.remove("two.txt")
    volume.remove("two.txt", missing_ok=True)
    volume.rmdir("dir")
    for path in ("a/b/c", "a/b", "a"):
        volume.rmdir(path)
    assert volume.listdir() == []


def test_failed_write_leaves_nothing_under_final_name(volume: NfsVolume, server: nfs_server.NfsServerHandle) -> None:
    seen_while_writing: list[list[str]] = []

    class WatchedStream(GeneratedStream):
        def read(self, count: int = -1) -> bytes:
            seen_while_writing.append(volume.listdir())
            return super().read(count)

    source = WatchedStream(5 * MB, fail_after=3 * MB)
    with pytest.raises(OperationFailed, match="reading the source failed after") as failed:
        volume.write_stream("dump.sql", source)
    assert "dump.sql" in failed.value.message and "the database dump died" in failed.value.message
    assert not volume.exists("dump.sql")
    assert volume.listdir() == []
    # While it was being written, the data lived under a partial name only.
    later = seen_while_writing[-1]
    assert len(later) == 1 and later[0].startswith(".dump.sql" + PARTIAL_MARK)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "nohost",
        "host:relative/path",
        ":/export",
        "two words:/x",
        "host:/a/../b",
        "[fd00::1:/x",
        "host:/x?version=3",
    ],
)
def test_bad_volume_string(spec: str) -> None:
    with pytest.raises(BadInput, match="NFS volume"):
        NfsVolume.parse(spec)


def test_volume_spec_forms() -> None:
    assert NfsVolume.parse("nfs.example.com:/exports//vio/").spec == "nfs.example.com:/exports/vio"
    assert NfsVolume.parse("[fd00::5]:/backups", port=3049).spec == "[fd00::5]:/backups (port 3049)"
    with pytest.raises(BadInput, match="port"):
        NfsVolume.parse("h:/x", port=70000)


def test_unreachable_volume_fails_clearly() -> None:
    volume = NfsVolume.parse("127.0.0.1:/vio_backup", port=free_port(), timeout=5)
    with pytest.raises(OperationFailed) as failed:
        volume.write_stream("backup.bin", io.BytesIO(b"data"))
    assert "127.0.0.1:/vio_backup" in failed.value.message
    assert "Connection refused" in failed.value.message
    assert "reachable from the OMS" in (failed.value.hint or "")


def test_unknown_export_fails_clearly(server: nfs_server.NfsServerHandle) -> None:
    volume = NfsVolume.parse("127.0.0.1:/no_such_export", port=server.port)
    with pytest.raises(OperationFailed, match="mount") as failed:
        volume.listdir()
    assert "/no_such_export" in (failed.value.hint or "")


def test_export_has_no_root_squash(volume: NfsVolume, server: nfs_server.NfsServerHandle) -> None:
    volume.mkdir("owned")
    volume.write_stream("owned/by-root", io.BytesIO(b"root"))
    on_server = next(server.export_dir.rglob("by-root"))
    assert on_server.stat().st_uid == 0 and on_server.stat().st_gid == 0
    assert on_server.parent.stat().st_uid == 0
    assert on_server.read_bytes() == b"root"


def test_root_squash_is_named(tmp_path: Path) -> None:
    handle = nfs_server.start(tmp_path / "lab", tmp_path / "export", "127.0.0.1", free_port(), squash="Root_Squash")
    try:
        volume = NfsVolume.parse(handle.export_spec, port=handle.port)
        with volume, pytest.raises(OperationFailed, match="Permission denied") as failed:
            volume.write_stream("backup.bin", io.BytesIO(b"data"))
        assert "no_root_squash" in (failed.value.hint or "")
    finally:
        nfs_server.stop(handle)


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_server_lost_mid_write_fails_clearly(tmp_path: Path, how: str) -> None:
    handle = nfs_server.start(tmp_path / "lab", tmp_path / "export", "127.0.0.1", free_port())
    signalled = False

    class SlowStream(GeneratedStream):
        def read(self, count: int = -1) -> bytes:
            nonlocal signalled
            if self.produced >= 2 * MB and not signalled:
                os.kill(handle.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
                signalled = True
            return super().read(min(count, 256 * 1024))

    volume = NfsVolume.parse(handle.export_spec, port=handle.port, timeout=2)
    started = time.monotonic()
    try:
        with pytest.raises(OperationFailed, match=r"NFS write /lost\.bin on 127") as failed:
            volume.write_stream("lost.bin", SlowStream(20 * MB))
        assert time.monotonic() - started < 15
        assert "reachable from the OMS" in (failed.value.hint or "")
    finally:
        if how == "hung":
            os.kill(handle.pid, signal.SIGCONT)
        nfs_server.stop(handle)
    assert not (tmp_path / "export" / "lost.bin").exists()


def test_stop_leaves_no_ganesha(tmp_path: Path) -> None:
    handle = nfs_server.start(tmp_path / "lab", tmp_path / "export", "127.0.0.1", free_port())
    assert Path(f"/proc/{handle.pid}").exists()
    assert nfs_server.stop(handle) is True
    assert not Path(f"/proc/{handle.pid}").exists()
    assert not nfs_server.is_running(handle.pid)
    assert not handle.pid_file.exists()
    assert nfs_server.stop(handle) is False  # stopping again is a no-op
    with pytest.raises(OperationFailed, match="Connection refused"):
        NfsVolume.parse(handle.export_spec, port=handle.port).listdir()


def test_stop_leaves_other_processes_alone(server: nfs_server.NfsServerHandle) -> None:
    assert nfs_server.stop(os.getpid()) is False  # a reused pid: not a ganesha
    other = nfs_server.NfsServerHandle(server.pid, "127.0.0.1", 1, "/x", Path("/"), Path("/elsewhere"))
    assert nfs_server.stop(other) is False  # a ganesha, but not running this handle's configuration
    assert nfs_server.is_running(server)


def test_start_fails_clearly_when_port_taken(server: nfs_server.NfsServerHandle, tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match=r"cannot listen on 127\.0\.0\.1"):
        nfs_server.start(tmp_path / "lab", tmp_path / "export", "127.0.0.1", server.port)
    with pytest.raises(OperationFailed, match=r"cannot listen on 192\.0\.2\.1"):
        nfs_server.start(tmp_path / "lab", tmp_path / "export", "192.0.2.1", free_port())


def test_handle_round_trips_through_a_record(server: nfs_server.NfsServerHandle) -> None:
    assert nfs_server.NfsServerHandle.from_dict(server.to_dict()) == server


# --- as a backup target (viocli/backup/target.py) ------------------------------------------------------


def test_rename_makes_a_directory_final_and_never_replaces(volume: NfsVolume) -> None:
    volume.mkdir(".vio_os_db_1.partial")
    volume.write_stream(".vio_os_db_1.partial/keystone.sql.zst", io.BytesIO(b"dump"))
    volume.rename(".vio_os_db_1.partial", "vio_os_db_1")
    assert volume.listdir() == ["vio_os_db_1"]
    assert volume.listdir("vio_os_db_1") == ["keystone.sql.zst"]
    volume.mkdir("other")
    with pytest.raises(OperationFailed, match="already exists"):
        volume.rename("other", "vio_os_db_1")
    with pytest.raises(OperationFailed, match="no such file"):
        volume.rename("absent", "elsewhere")
    assert volume.owner("vio_os_db_1/keystone.sql.zst") == 0


def test_preflight_passes_on_the_lab_export_and_leaves_nothing(volume: NfsVolume) -> None:
    preflight(volume)
    assert volume.listdir() == []


def _refusal(spec: str, port: int) -> Refused:
    with pytest.raises(Refused) as refused:
        preflight(open_target(spec, nfs_port=port))
    assert refused.value.exit_code == 4
    assert refused.value.message.startswith(f"backup target {spec}")
    assert "\n" not in refused.value.message
    return refused.value


def test_preflight_refuses_an_unreachable_server() -> None:
    refused = _refusal("127.0.0.1:/vio_backup", free_port())
    assert "Connection refused" in refused.message and "reachable" in (refused.hint or "")


def test_preflight_refuses_a_missing_export(server: nfs_server.NfsServerHandle) -> None:
    refused = _refusal("127.0.0.1:/no_such_export", server.port)
    assert "/no_such_export" in (refused.hint or "")


@pytest.mark.parametrize(
    ("option", "value", "hint"), [("squash", "Root_Squash", "no_root_squash"), ("access", "RO", "read-write")]
)
def test_preflight_refuses_a_read_only_or_root_squashing_export(tmp_path: Path, option: str, value: str, hint) -> None:
    handle = nfs_server.start(tmp_path / "lab", tmp_path / "export", "127.0.0.1", free_port(), **{option: value})
    try:
        refused = _refusal(handle.export_spec, handle.port)
        assert hint in (refused.hint or ""), refused
        assert list((tmp_path / "export").iterdir()) == []
    finally:
        nfs_server.stop(handle)
