"""Backup targets: what NFS_VOLUME names, the local directory target, and the preflight's refusals."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from viocli.backup import target as target_module
from viocli.backup.target import DirectoryTarget, open_target, preflight
from viocli.errors import EXIT_BAD_INPUT, EXIT_REFUSED, BadInput, OperationFailed, Refused
from viocli.nfs import NfsVolume


def test_an_absolute_path_is_a_directory_and_host_export_is_nfs(tmp_path: Path) -> None:
    assert isinstance(open_target(str(tmp_path)), DirectoryTarget)
    volume = open_target("192.0.2.10:/exports/vio")
    assert isinstance(volume, NfsVolume)
    assert volume.spec == "192.0.2.10:/exports/vio"


@pytest.mark.parametrize("spec", ["backups", "192.0.2.10", "192.0.2.10:exports", "bad host:/x", ""])
def test_a_malformed_volume_is_bad_input(spec: str) -> None:
    with pytest.raises(BadInput) as error:
        open_target(spec)
    assert error.value.exit_code == EXIT_BAD_INPUT


def test_a_directory_target_writes_whole_files_renames_and_never_replaces(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path)
    target.mkdir(".vio_ms_1.partial")
    assert target.write_stream(".vio_ms_1.partial/data", io.BytesIO(b"x" * 5000)) == 5000
    with pytest.raises(OperationFailed, match="already exists"):
        target.write_stream(".vio_ms_1.partial/data", io.BytesIO(b"other"))
    target.rename(".vio_ms_1.partial", "vio_ms_1")
    assert target.listdir() == ["vio_ms_1"]
    assert target.listdir("vio_ms_1") == ["data"]
    assert target.size("vio_ms_1/data") == 5000
    sink = io.BytesIO()
    assert target.read_stream("vio_ms_1/data", sink) == 5000 and sink.getvalue() == b"x" * 5000
    target.mkdir("other")
    with pytest.raises(OperationFailed, match="already exists"):
        target.rename("other", "vio_ms_1")
    with pytest.raises(BadInput):
        target.write_stream("../escape", io.BytesIO(b""))


def test_preflight_passes_on_a_writable_directory_and_leaves_nothing(tmp_path: Path) -> None:
    preflight(DirectoryTarget(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_preflight_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(Refused) as error:
        preflight(DirectoryTarget(tmp_path / "absent"))
    assert error.value.exit_code == EXIT_REFUSED
    assert str(tmp_path / "absent") in error.value.message


def test_preflight_refuses_a_target_where_root_is_squashed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(DirectoryTarget, "owner", lambda self, path: 65534)
    with pytest.raises(Refused, match="root's files are not root's") as error:
        preflight(DirectoryTarget(tmp_path))
    assert "no_root_squash" in (error.value.hint or "")
    assert list(tmp_path.iterdir()) == []


def test_preflight_turns_a_failed_write_into_a_refusal_naming_the_target(tmp_path: Path, monkeypatch) -> None:
    def full(self, name, source):
        raise OperationFailed(f"write {tmp_path}/{name}: No space left on device", hint="free space on it")

    monkeypatch.setattr(DirectoryTarget, "write_stream", full)
    with pytest.raises(Refused) as error:
        preflight(DirectoryTarget(tmp_path))
    assert error.value.message.startswith(f"backup target {tmp_path} cannot take a backup: write ")
    assert error.value.hint == "free space on it"
    assert target_module.PROBE_PREFIX in error.value.message
