"""The patch store on the OMS and the apt repositories it serves to the nodes.

The store (``<state dir>/patches``, root only) holds each added patch's file, and per patch a work
directory: its payload extracted, the flat apt repository of its node packages, and the versions each
node had before the patch (``previous/<deployment>/<node>/``, rebuilt on the node by ``install``),
which are what ``uninstall`` puts back. The nodes get a repository over the SSH connection Ansible
already uses with checked host keys: no port opens on the OMS and no unsigned index crosses the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Deb822
from debian.debfile import DebFile

from viocli.atomic import write_atomic
from viocli.settings import Settings

INDEX = "Packages"


def store_dir(settings: Settings) -> Path:
    """The OMS's patch store, made root-only on first use."""
    path = settings.state_dir / "patches"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def work_dir(settings: Settings, key: str) -> Path:
    """The work directory of patch ``key`` (NAME_VERSION) in the store."""
    path = store_dir(settings) / key
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def previous_dir(settings: Settings, key: str, deployment: str) -> Path:
    """Where the versions a deployment's nodes had before patch ``key`` are kept, one directory per node."""
    path = work_dir(settings, key) / "previous" / deployment
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class DebInfo:
    """A node package's name, version and file."""

    package: str
    version: str
    path: Path


def deb_info(path: Path) -> DebInfo:
    """Package and Version of a .deb file."""
    control = DebFile(str(path)).debcontrol()
    return DebInfo(control["Package"], control["Version"], path)


def kept_packages(directory: Path) -> list[DebInfo]:
    """The packages kept in ``directory`` (one node's versions from before a patch)."""
    if not directory.is_dir():
        return []
    return [deb_info(p) for p in sorted(directory.glob("*.deb"))]


def build_repository(directory: Path, debs: list[Path]) -> Path:
    """A flat apt repository in ``directory``: the .deb files (hard-linked when possible) and their
    Packages index with each file's size and SHA-256. Files of the same name are taken once."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stanzas = []
    seen: set[str] = set()
    for deb in debs:
        if deb.name in seen:
            continue
        seen.add(deb.name)
        target = directory / deb.name
        if not target.exists():
            try:
                os.link(deb, target)
            except OSError:
                shutil.copy2(deb, target)
        stanza = Deb822(DebFile(str(target)).debcontrol())
        data = target.read_bytes()
        stanza["Filename"] = f"./{deb.name}"
        stanza["Size"] = str(len(data))
        stanza["SHA256"] = hashlib.sha256(data).hexdigest()
        stanzas.append(stanza.dump())
    write_atomic(directory / INDEX, "\n".join(stanzas).encode("utf-8"), 0o600)
    return directory
