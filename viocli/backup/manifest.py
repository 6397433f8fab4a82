"""A backup's manifest (``manifest.json``, written last) and the check of its files against it.

The manifest says what the backup is (kind, deployment, viocli version, when, how long it took) and,
for each file, its size and SHA-256 as stored; an openstack_db backup adds the MariaDB version, the
Galera member and position it was taken at, and each table's row count and checksum.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from viocli import __version__
from viocli.backup.naming import MANIFEST
from viocli.backup.target import BackupTarget
from viocli.errors import OperationFailed

FORMAT = 1


@dataclass(frozen=True)
class StoredFile:
    """One file of a backup as stored: its name in the backup's directory, size and SHA-256."""

    name: str
    size: int
    sha256: str
    raw_size: int | None = None  # before compression, when the file is compressed


@dataclass
class Manifest:
    """What ``manifest.json`` records."""

    kind: str
    name: str
    deployment: str
    created_at: str
    duration_seconds: float
    files: list[StoredFile]
    details: dict[str, Any] = field(default_factory=dict)
    viocli_version: str = __version__
    format: int = FORMAT

    @property
    def size(self) -> int:
        """The bytes the backup's files take on the target."""
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        """The manifest as written to the target."""
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """Parse ``manifest.json``; OperationFailed naming ``where`` when it is not one."""
        try:
            raw = json.loads(data)
            files = [StoredFile(**entry) for entry in raw.pop("files")]
            return cls(files=files, **raw)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise OperationFailed(f"{where}: {MANIFEST} is not a viocli backup manifest ({error})") from None


def read_manifest(target: BackupTarget, directory: str) -> Manifest:
    """The manifest of the backup in ``directory`` on ``target``."""
    sink = io.BytesIO()
    target.read_stream(f"{directory}/{MANIFEST}", sink)
    return Manifest.from_json(sink.getvalue(), f"{target.spec} {directory}")


def write_manifest(target: BackupTarget, directory: str, manifest: Manifest) -> None:
    """Write ``manifest.json`` into ``directory``: durable before this returns."""
    target.write_stream(f"{directory}/{MANIFEST}", io.BytesIO(manifest.to_json()))


class HashingSink(io.RawIOBase):
    """A sink that only counts and (unless ``hashed`` is false) hashes what is written to it."""

    def __init__(self, *, hashed: bool = True) -> None:
        self.digest = hashlib.sha256()
        self.hashed = hashed
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if self.hashed:
            self.digest.update(view)
        self.size += view.nbytes
        return view.nbytes


def check_files(target: BackupTarget, directory: str, manifest: Manifest) -> list[str]:
    """Re-read every file of the backup; one line per file that is missing, extra or differs."""
    problems: list[str] = []
    present = set(target.listdir(directory)) - {MANIFEST}
    for stored in manifest.files:
        if stored.name not in present:
            problems.append(f"{stored.name}: missing")
            continue
        sink = HashingSink()
        target.read_stream(f"{directory}/{stored.name}", sink)
        if sink.size != stored.size:
            problems.append(f"{stored.name}: {sink.size} bytes, the manifest says {stored.size}")
        elif sink.digest.hexdigest() != stored.sha256:
            problems.append(
                f"{stored.name}: SHA-256 {sink.digest.hexdigest()[:16]}..., the manifest says {stored.sha256[:16]}..."
            )
    for extra in sorted(present - {f.name for f in manifest.files}):
        problems.append(f"{extra}: not in the manifest")
    return problems
