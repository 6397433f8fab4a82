"""viocli's one atomic file writer: a file appears whole under its name, or not at all.

The data goes to a temporary file beside the final one (created with the final mode, so it is never
readable beyond it), is flushed to stable storage, and is renamed over the final name; the directory is
then synced so the rename survives a crash. On any failure the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def write_atomic_stream(path: Path, source: BinaryIO, mode: int, *, overwrite: bool = True) -> int:
    """Stream ``source`` to ``path`` atomically with permissions ``mode``; return the bytes written.

    With ``overwrite`` false an existing ``path`` is an error (FileExistsError), checked at the rename
    too: the file is linked to its name, never replacing one that appeared meanwhile.
    """
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    written = 0
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            while data := source.read(CHUNK):
                handle.write(data)
                written += len(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the name exists: no race with another writer
            os.unlink(tmp)
        _sync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return written


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, the file never readable beyond ``mode``."""
    write_atomic_stream(path, io.BytesIO(data), mode)


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
