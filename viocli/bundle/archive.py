"""The bundle: one gzip-compressed tar stream written to its target as it is made (a directory or an NFS
export: nothing is staged on the OMS's disk), with ``manifest.json`` as its last member.

Every file goes through the redactor before it is written, and the manifest records its path in the
bundle, the node it came from, the command or path it came from, its size and SHA-256 (of what the
bundle holds). Several collectors add files at once (one per node); a lock keeps the tar stream whole.

The target writes to a temporary name and renames it only once the stream is complete and durable,
so an interrupted run never leaves a partial bundle under the final name.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from viocli.backup.target import BackupTarget
from viocli.bundle.redaction import BundleRedactor
from viocli.errors import OperationFailed

GZIP_LEVEL = 6
MANIFEST = "manifest.json"


@dataclass
class Entry:
    """One file of the bundle, as the manifest lists it."""

    path: str
    node: str
    source: str
    size: int
    sha256: str
    redactions: int
    cut: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's form (the cut only when there was one)."""
        out: dict[str, Any] = {
            "path": self.path,
            "node": self.node,
            "source": self.source,
            "size": self.size,
            "sha256": self.sha256,
            "redactions": self.redactions,
        }
        if self.cut:
            out["cut"] = self.cut
        return out


class _Stream(io.RawIOBase):
    """The pipe's reading end as the target reads it: its end is an error unless the bundle was
    completed, so that the target drops its temporary file instead of making a cut bundle final."""

    def __init__(self, fd: int):
        self._file = os.fdopen(fd, "rb", buffering=0)
        self.completed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        if not count and not self.completed:
            raise OSError("the bundle was not completed")
        return count or 0

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass
class BundleWriter:
    """Writes the bundle ``name`` to ``target`` through a pipe fed by :meth:`add` (thread-safe)."""

    target: BackupTarget
    name: str
    redactor: BundleRedactor
    top: str  # the directory every member is under (the bundle's name without .tar.gz)
    entries: list[Entry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self._source = _Stream(read_fd)
        self._sink = os.fdopen(write_fd, "wb")
        self._error: BaseException | None = None
        self._written = 0
        self._thread = threading.Thread(target=self._write, name="bundle-writer", daemon=True)
        self._thread.start()
        self._gzip = gzip.GzipFile(fileobj=self._sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
        # Closed by finish(): the stream outlives this method.
        self._tar = tarfile.open(fileobj=self._gzip, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def _write(self) -> None:
        try:
            self._written = self.target.write_stream(self.name, self._source)
        except BaseException as error:  # handed to the thread that closes the bundle
            self._error = error
        finally:
            self._source.close()  # a writer still feeding the pipe gets EPIPE, never blocks

    def add(self, path: str, data: bytes, *, node: str, source: str, redact: bool = True) -> Entry:
        """Redact ``data`` and add it as ``path`` (under the bundle's top directory)."""
        count = 0
        if redact:
            data, count = self.redactor.redact_file(path, data)
        entry = Entry(path, node, source, len(data), hashlib.sha256(data).hexdigest(), count)
        info = self._member(path, len(data))
        with self._lock:
            self._check()
            try:
                self._tar.addfile(info, io.BytesIO(data))
            except (BrokenPipeError, ValueError) as error:
                self._check()
                raise OperationFailed(f"writing the bundle to {self.target.spec} failed: {error}") from error
            self.entries.append(entry)
        return entry

    def _member(self, path: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(f"{self.top}/{path}")
        info.size = size
        info.mtime = int(time.time())
        info.mode = 0o600
        return info

    def _check(self) -> None:
        if self._error is not None:
            error = self._error
            message = getattr(error, "message", None) or str(error)
            raise OperationFailed(f"writing the bundle {self.name} to {self.target.spec} failed: {message}")

    def finish(self, manifest: dict[str, Any]) -> int:
        """Add ``manifest.json`` (with every entry), close the stream and wait until the target made the
        bundle final; the bundle's size in bytes."""
        manifest = {**manifest, "files": [e.to_dict() for e in self.entries]}
        data = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
        info = self._member(MANIFEST, len(data))
        with self._lock:
            self._check()
            self._tar.addfile(info, io.BytesIO(data))
            self._tar.close()
            self._gzip.close()
            self._source.completed = True
            self._sink.close()
        self._thread.join()
        self._check()
        return self._written

    def abandon(self) -> None:
        """Stop writing: the target drops its temporary file (the final name never appears)."""
        with contextlib.suppress(Exception):
            self._sink.close()  # the target reads a short stream: it is made to fail below
        # Closed now (their last writes fail on the closed pipe), not when collected, where the
        # failure would be printed as an "Exception ignored" traceback.
        for layer in (self._tar, self._gzip):
            with contextlib.suppress(Exception):
                layer.close()
        self._error = self._error or OperationFailed("abandoned")
        self._thread.join(timeout=30)
