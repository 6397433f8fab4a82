"""The deployment's known_hosts, written by viocli from host keys read out of vCenter."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from viocli.errors import OperationFailed

HEADER = "# Managed by viocli from the host keys the nodes publish in vCenter; do not edit.\n"


def write_known_hosts(path: Path, entries: Mapping[str, tuple[list[str], str]]) -> None:
    """Write ``name -> (addresses, "ssh-ed25519 AAAA...")`` as known_hosts (0600), atomically."""
    lines = [HEADER]
    for name in sorted(entries):
        addresses, key = entries[name]
        parts = key.split()
        if len(parts) < 2 or not parts[0].startswith("ssh-"):
            raise OperationFailed(f"{name} published a malformed SSH host key: {key[:40]!r}")
        lines.append(f"{','.join([*addresses, name])} {parts[0]} {parts[1]}\n")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.writelines(lines)
    os.replace(tmp, path)
