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


def replace_host_key(path: Path, name: str, addresses: list[str], key: str) -> bool:
    """Put ``name``'s new host key (a rebuilt node) in place of its old one; the other nodes' lines stay.

    Returns True when the key changed. Checking stays on: only the line of this node, matched by its
    name or any of its addresses, is replaced, with the key its new VM published in vCenter.
    """
    own = {name, *addresses}
    entries: dict[str, tuple[list[str], str]] = {}
    old_key = None
    text = path.read_text(encoding="ascii") if path.exists() else ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        hosts, key_type, key_data = line.split()[:3]
        names = hosts.split(",")
        if own & set(names):
            old_key = f"{key_type} {key_data}"
            continue
        entries[names[-1]] = (names[:-1], f"{key_type} {key_data}")
    entries[name] = (addresses, key)
    write_known_hosts(path, entries)
    return old_key != " ".join(key.split()[:2])
