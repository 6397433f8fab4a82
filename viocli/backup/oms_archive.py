"""What rebuilds the OMS, as one archive encrypted with a passphrase (age, through pyrage).

The archive is a gzipped tar of: the state store (a consistent copy through SQLite's backup API, taken
while other viocli commands may read it), every deployment's secrets store, PKI (CA keys included) and
known_hosts, the OMS's SSH key pair, each deployment's inventory and custom.yml, and viocli's
configuration file. Runner artifacts and fact caches are left out: they are rebuilt by the next run.
Its ``oms-manifest.json`` member records where each file came from, its mode and SHA-256, so that a
restore puts every file back where it was, as it was.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from viocli.errors import BadInput
from viocli.names import is_valid_name
from viocli.settings import Settings

MANIFEST = "oms-manifest.json"
FORMAT = 1
# Per deployment: what a rebuilt OMS needs. runner/ (artifacts) and facts/ (cache) are rebuilt by runs.
DEPLOYMENT_FILES = ("secrets.yml", "vault_password", "known_hosts")
DEPLOYMENT_DIRS = ("tls",)


@dataclass(frozen=True)
class ArchivedFile:
    """One file of the archive: its name there, where it came from, its mode, size and SHA-256."""

    member: str
    origin: str
    mode: int
    size: int
    sha256: str


def _deployments(db_path: Path) -> list[tuple[str, Path]]:
    """(name, inventory path) of every deployment the state store knows."""
    if not db_path.exists():
        return []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT name, inventory_path FROM deployments ORDER BY name").fetchall()
    return [(name, Path(path)) for name, path in rows]


def _inventory_files(inventory: Path) -> list[Path]:
    """The inventory file and the custom.yml it names (relative to its directory), those that exist."""
    files = [inventory] if inventory.is_file() else []
    try:
        data = yaml.safe_load(inventory.read_text(encoding="utf-8")) if files else None
    except (OSError, yaml.YAMLError):
        data = None
    custom = data.get("custom_file") if isinstance(data, dict) else None
    if isinstance(custom, str) and custom:
        path = Path(custom) if Path(custom).is_absolute() else inventory.parent / custom
        if path.is_file():
            files.append(path)
    return files


def _deployment_dirs(settings: Settings, registered: list[str]) -> list[str]:
    """Every deployment with private data on this OMS: the registered ones, and those whose secrets
    were stored before ``deployment create`` (the vCenter password is set first)."""
    names = set(registered)
    root = settings.state_dir / "deployments"
    if root.is_dir():
        for entry in root.iterdir():
            if entry.is_dir() and is_valid_name(entry.name):
                names.add(entry.name)
    return sorted(names)


def sources(settings: Settings) -> list[tuple[str, Path]]:
    """(member name, file) for every file the archive holds, but the state store (snapshotted apart)."""
    found: list[tuple[str, Path]] = []
    for key in sorted((settings.state_dir / "ssh").glob("id_*")):
        found.append((f"state/ssh/{key.name}", key))
    registered = _deployments(settings.db_path)
    for name in _deployment_dirs(settings, [name for name, _ in registered]):
        directory = settings.deployment_dir(name)
        for file_name in DEPLOYMENT_FILES:
            if (directory / file_name).is_file():
                found.append((f"state/deployments/{name}/{file_name}", directory / file_name))
        for sub in DEPLOYMENT_DIRS:
            for path in sorted((directory / sub).rglob("*")):
                if path.is_file():
                    found.append((f"state/deployments/{name}/{path.relative_to(directory)}", path))
    for name, inventory in registered:
        for path in _inventory_files(inventory):
            found.append((f"inventories/{name}/{path.name}", path))
    if settings.config_file.is_file():
        found.append((f"config/{settings.config_file.name}", settings.config_file))
    return found


def snapshot_state(db_path: Path, destination: Path) -> None:
    """A consistent copy of the state store at ``destination`` (SQLite's online backup API)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as source, sqlite3.connect(destination) as copy:
        source.backup(copy)
    os.chmod(destination, 0o600)


def build(settings: Settings) -> tuple[bytes, list[ArchivedFile]]:
    """The archive (a gzipped tar, in memory: the OMS's files are small) and what it holds."""
    archived: list[ArchivedFile] = []
    buffer = io.BytesIO()
    with (
        tempfile.TemporaryDirectory(prefix="viocli-oms-backup-") as scratch,
        tarfile.open(fileobj=buffer, mode="w:gz") as tar,
    ):
        # (member, file to read, where it belongs): the state store is read from its snapshot
        entries = [(member, path, path) for member, path in sources(settings)]
        if settings.db_path.exists():
            snapshot = Path(scratch) / "viocli.db"
            snapshot_state(settings.db_path, snapshot)
            entries.insert(0, ("state/viocli.db", snapshot, settings.db_path))
        mtime = int(time.time())
        for member, path, origin in entries:
            data = path.read_bytes()
            mode = origin.stat().st_mode & 0o777  # the file's own mode, not its snapshot's
            archived.append(ArchivedFile(member, str(origin), mode, len(data), hashlib.sha256(data).hexdigest()))
            _add(tar, member, data, mode, mtime)
        manifest = {
            "format": FORMAT,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "state_dir": str(settings.state_dir),
            "files": [vars(entry) for entry in archived],
        }
        _add(tar, MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"), 0o600, mtime)
    return buffer.getvalue(), archived


def _add(tar: tarfile.TarFile, member: str, data: bytes, mode: int, mtime: int) -> None:
    info = tarfile.TarInfo(member)
    info.size, info.mode, info.mtime = len(data), mode, mtime
    tar.addfile(info, io.BytesIO(data))


def encrypt(archive: bytes, passphrase: str) -> bytes:
    """``archive`` encrypted with ``passphrase`` (age, scrypt)."""
    from pyrage import passphrase as age

    return age.encrypt(archive, passphrase)


def decrypt(data: bytes, passphrase: str, where: str) -> bytes:
    """The archive in ``data``; BadInput when the passphrase is wrong or ``data`` is no such archive."""
    from pyrage import DecryptError
    from pyrage import passphrase as age

    try:
        return age.decrypt(data, passphrase)
    except DecryptError:
        raise BadInput(
            f"{where}: cannot decrypt it: wrong passphrase, or not an OMS backup made by viocli",
            hint="give the passphrase used for `viocli backup mgmt_server` (--passphrase-file or the terminal)",
        ) from None


def read_manifest(archive: bytes, where: str) -> tuple[dict, dict[str, bytes]]:
    """The archive's manifest and its files' contents, each checked against the manifest's SHA-256."""
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for info in tar.getmembers():
            if info.isfile():
                handle = tar.extractfile(info)
                contents[info.name] = handle.read() if handle else b""
    if MANIFEST not in contents:
        raise BadInput(f"{where}: no {MANIFEST} in the archive: not an OMS backup made by viocli")
    manifest = json.loads(contents.pop(MANIFEST))
    for entry in manifest["files"]:
        data = contents.get(entry["member"])
        if data is None or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise BadInput(f"{where}: {entry['member']} is missing or differs from its recorded SHA-256")
    return manifest, contents
