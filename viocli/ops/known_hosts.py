"""The deployment's known_hosts, written by viocli from host keys read out of vCenter."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from viocli.atomic import write_atomic
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
    write_atomic(path, "".join(lines).encode("ascii"), 0o600)
