"""Where backups go, behind one small interface: an NFS volume ``host:/export`` (reached through viocli's
userspace client, so it works on an OMS whose kernel has no NFS client) or a local directory given as an
absolute path (tests, and air-gapped sites that mount their storage themselves).

Both write a file under a temporary name and rename it only once it is on stable storage, never replace
an existing name, and rename directories, so a backup directory can be made final last. Before any
database work, :func:`preflight` proves the target can take a backup and refuses (exit 4) with one line
naming the server and the problem: unreachable, no such export, read-only, or squashing root.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Protocol

from viocli.atomic import CHUNK, write_atomic_stream
from viocli.errors import BadInput, OperationFailed, Refused
from viocli.nfs import NfsVolume

PROBE_PREFIX = ".viocli-probe-"
HINT_SQUASHED = (
    "the export squashes root (files viocli writes belong to another user, and a restore could not set "
    "their owners): export it with no_root_squash, read-write, to the OMS address"
)


class BackupTarget(Protocol):
    """The operations a backup needs from where it is stored. Paths are relative to the target."""

    @property
    def spec(self) -> str:
        """The target as the operator wrote it."""

    def write_stream(self, name: str, source: BinaryIO) -> int:
        """Stream ``source`` to the new file ``name``, made final only once durable; the bytes written."""

    def read_stream(self, name: str, sink: BinaryIO) -> int:
        """Stream the file ``name`` into ``sink``; the bytes read."""

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a directory."""

    def size(self, path: str) -> int:
        """The size of the file ``path`` in bytes."""

    def free_bytes(self) -> int:
        """The bytes free where files are written."""

    def owner(self, path: str) -> int:
        """The numeric owner of ``path`` as stored."""

    def listdir(self, path: str = "") -> list[str]:
        """The names in directory ``path``, sorted."""

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Create the directory ``path``."""

    def rename(self, old: str, new: str) -> None:
        """Rename ``old`` to ``new``, which must not exist."""

    def remove(self, path: str, *, missing_ok: bool = False) -> None:
        """Remove the file ``path``."""

    def rmdir(self, path: str) -> None:
        """Remove the empty directory ``path``."""

    def close(self) -> None:
        """Release the connection, if any."""


class DirectoryTarget:
    """A backup target in a local directory (an absolute path), with the NFS target's guarantees."""

    def __init__(self, root: Path):
        if not root.is_absolute():
            raise BadInput(f"backup directory {str(root)!r}: give an absolute path")
        self.root = root

    @property
    def spec(self) -> str:
        return str(self.root)

    def __enter__(self) -> DirectoryTarget:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _path(self, path: str, *, root_ok: bool = False) -> Path:
        parts = [part for part in path.split("/") if part]
        if any(part in (".", "..") for part in parts) or "\0" in path:
            raise BadInput(f"backup directory {self.spec}: {path!r} may not contain '.' or '..'")
        if not parts and not root_ok:
            raise BadInput(f"backup directory {self.spec}: a file or directory name is needed")
        return self.root.joinpath(*parts)

    def _fail(self, operation: str, path: str, error: OSError) -> OperationFailed:
        reason = error.strerror or str(error)
        return OperationFailed(f"{operation} {self._path(path, root_ok=True)}: {reason}")

    def write_stream(self, name: str, source: BinaryIO) -> int:
        try:
            return write_atomic_stream(self._path(name), source, 0o600, overwrite=False)
        except FileExistsError:
            raise OperationFailed(f"write {self._path(name)}: it already exists") from None
        except OSError as error:
            raise self._fail("write", name, error) from error

    def read_stream(self, name: str, sink: BinaryIO) -> int:
        total = 0
        try:
            with self._path(name).open("rb") as source:
                while data := source.read(CHUNK):
                    sink.write(data)
                    total += len(data)
        except OSError as error:
            raise self._fail("read", name, error) from error
        return total

    def exists(self, path: str) -> bool:
        return self._path(path, root_ok=True).exists()

    def is_dir(self, path: str) -> bool:
        return self._path(path, root_ok=True).is_dir()

    def free_bytes(self) -> int:
        try:
            found = os.statvfs(self.root)
        except OSError as error:
            raise self._fail("statvfs", "", error) from error
        return found.f_bavail * found.f_frsize

    def size(self, path: str) -> int:
        try:
            return self._path(path).stat().st_size
        except OSError as error:
            raise self._fail("stat", path, error) from error

    def owner(self, path: str) -> int:
        try:
            return self._path(path, root_ok=True).stat().st_uid
        except OSError as error:
            raise self._fail("stat", path, error) from error

    def listdir(self, path: str = "") -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(self._path(path, root_ok=True)))
        except OSError as error:
            raise self._fail("list", path, error) from error

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        try:
            self._path(path).mkdir(mode=0o700, parents=parents, exist_ok=exist_ok)
        except OSError as error:
            raise self._fail("mkdir", path, error) from error

    def rename(self, old: str, new: str) -> None:
        target = self._path(new)
        if target.exists():
            raise OperationFailed(f"rename {target}: it already exists")
        try:
            self._path(old).rename(target)
        except OSError as error:
            raise self._fail("rename", old, error) from error

    def remove(self, path: str, *, missing_ok: bool = False) -> None:
        try:
            self._path(path).unlink(missing_ok=missing_ok)
        except OSError as error:
            raise self._fail("remove", path, error) from error

    def rmdir(self, path: str) -> None:
        try:
            self._path(path).rmdir()
        except OSError as error:
            raise self._fail("rmdir", path, error) from error

    def close(self) -> None:
        """Nothing to release."""


def open_target(spec: str, *, nfs_port: int = 2049) -> BackupTarget:
    """The target ``spec`` names: an absolute path is a local directory, anything else ``host:/export``.

    A malformed spec is :class:`~viocli.errors.BadInput` (exit 2); nothing is contacted here.
    """
    text = spec.strip() if isinstance(spec, str) else ""
    if text.startswith("/"):
        return DirectoryTarget(Path(text))
    return NfsVolume.parse(text, port=nfs_port)


def preflight(target: BackupTarget) -> None:
    """Prove that ``target`` can take a backup: reach it, write, read back and remove a probe file, and
    check that root's files stay root's. Refused (exit 4), naming the target and the problem, if not."""
    probe = f"{PROBE_PREFIX}{secrets.token_hex(6)}"
    payload = secrets.token_bytes(64)
    try:
        if not target.is_dir(""):
            raise Refused(f"backup target {target.spec}: no such directory", hint="create it, or give another one")
        target.write_stream(probe, io.BytesIO(payload))
        try:
            back = io.BytesIO()
            target.read_stream(probe, back)
            if back.getvalue() != payload:
                raise Refused(f"backup target {target.spec}: a file written there reads back different")
            if os.geteuid() == 0 and target.owner(probe) != 0:
                raise Refused(f"backup target {target.spec}: root's files are not root's there", hint=HINT_SQUASHED)
        finally:
            with contextlib.suppress(OperationFailed, OSError):
                target.remove(probe, missing_ok=True)
    except OperationFailed as error:
        raise Refused(f"backup target {target.spec} cannot take a backup: {error.message}", hint=error.hint) from None
    except OSError as error:  # a local directory that cannot be read at all
        raise Refused(f"backup target {target.spec} cannot take a backup: {error}") from None
