"""viocli's one atomic file writer: whole or nothing, never readable beyond its mode."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from viocli.atomic import write_atomic, write_atomic_stream


class FailingStream(io.RawIOBase):
    """Gives one block, then fails as a dump that dies would."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls == 1:
            return b"x" * 100
        raise OSError("the dump died")


def test_a_stream_lands_whole_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "backup.bin"
    assert write_atomic_stream(target, io.BytesIO(b"a" * 3_000_000), 0o600) == 3_000_000
    assert target.read_bytes() == b"a" * 3_000_000
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.bin"]


def test_a_failed_stream_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"old", 0o600)
    with pytest.raises(OSError, match="the dump died"):
        write_atomic_stream(target, FailingStream(), 0o600)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_without_overwrite_an_existing_name_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_atomic_stream(target, io.BytesIO(b"first"), 0o644, overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic_stream(target, io.BytesIO(b"second"), 0o644, overwrite=False)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
