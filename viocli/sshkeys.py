"""SSH keys: the OMS's own key pair (to reach the nodes) and node host keys, in OpenSSH format."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from viocli.atomic import write_atomic


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, data, mode)


def generate_ed25519(private_path: Path, comment: str) -> str:
    """Write a new ed25519 key pair (private 0600, ``.pub`` 0644); return the public key line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode('ascii')} {comment}"
    _write(private_path, private, 0o600)
    _write(private_path.with_name(private_path.name + ".pub"), (line + "\n").encode("ascii"), 0o644)
    return line


def oms_keypair(state_dir: Path) -> tuple[Path, str]:
    """The OMS's key pair under ``<state>/ssh`` (created on first use); returns (private path, public line)."""
    private = state_dir / "ssh" / "id_ed25519"
    public = private.with_name("id_ed25519.pub")
    if private.exists() and public.exists():
        return private, public.read_text(encoding="ascii").strip()
    return private, generate_ed25519(private, "viocli-oms")
