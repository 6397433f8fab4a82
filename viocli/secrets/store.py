"""The secrets file of one deployment: ``<state>/deployments/<name>/secrets.yml``, mode 0600.

When ``vault_password`` (mode 0400) sits beside it, the file is Ansible-Vault encrypted with it.
Every value read is registered with the process-wide redactor, so it can never reach the
console, the log or an artifact.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from viocli.atomic import write_atomic
from viocli.errors import BadInput, Refused
from viocli.redact import REDACTOR
from viocli.secrets.catalog import GENERATED, secret_values

SECRETS_FILE = "secrets.yml"
VAULT_PASSWORD_FILE = "vault_password"


def _write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write atomically with ``mode`` from the first byte (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, data, mode)


class SecretStore:
    """Load, generate, read and set a deployment's secrets."""

    def __init__(self, deployment_dir: Path):
        self.dir = deployment_dir
        self.path = deployment_dir / SECRETS_FILE
        self.vault_password_path = deployment_dir / VAULT_PASSWORD_FILE

    # --- vault ---------------------------------------------------------------------------------
    def _vault(self):
        if not self.vault_password_path.exists():
            return None
        mode = stat.S_IMODE(self.vault_password_path.stat().st_mode)
        if mode & 0o377:
            raise Refused(
                f"vault password file {self.vault_password_path} has mode {mode:04o}; it must be 0400",
                hint=f"chmod 0400 {self.vault_password_path}",
            )
        from ansible.constants import DEFAULT_VAULT_ID_MATCH
        from ansible.parsing.vault import VaultLib, VaultSecret

        password = self.vault_password_path.read_bytes().strip()
        return VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password))])

    @property
    def encrypted(self) -> bool:
        return self.vault_password_path.exists()

    # --- load and save -------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        """All stored secrets (empty if none yet); registers them with the redactor.

        Opens the file read-only and creates nothing, so every read path (show, list) is safe to
        run against a deployment that has no secrets yet.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except PermissionError:
            raise Refused(f"cannot read the secrets of {self.dir.name}", hint="run the command with sudo") from None
        vault = self._vault()
        if raw.startswith(b"$ANSIBLE_VAULT"):
            if vault is None:
                raise Refused(
                    f"{self.path} is vault-encrypted but {self.vault_password_path} is missing",
                    hint="restore the vault password file from the OMS backup",
                )
            raw = vault.decrypt(raw)
        data = yaml.safe_load(raw) or {}
        if not isinstance(data, dict):
            raise Refused(f"{self.path} is damaged: not a mapping", hint="restore it from the OMS backup")
        for value in data.values():
            REDACTOR.add(secret_values(value))
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Write all secrets, encrypted when a vault password is present; 0600 either way."""
        text = yaml.safe_dump(dict(sorted(data.items())), default_flow_style=False).encode("utf-8")
        vault = self._vault()
        if vault is not None:
            text = vault.encrypt(text)
        _write_atomic(self.path, text)

    def ensure_generated(self) -> dict[str, Any]:
        """Load, generate whatever is missing (first use), save if anything was added."""
        data = self.load()
        missing = [name for name in GENERATED if name not in data]
        for name in missing:
            data[name] = GENERATED[name]()
            REDACTOR.add(secret_values(data[name]))
        if missing:
            self.save(data)
        return data

    def get(self, name: str) -> Any:
        """One stored value. A read: generates nothing, writes nothing, creates no directory."""
        data = self.load()
        if name in data:
            return data[name]
        deployment = self.dir.name
        if name in GENERATED:
            raise Refused(
                f"secret {name!r} of deployment {deployment} is not generated yet; `deployment create` generates it",
                hint="sudo viocli deployment create -i FILE (it also completes a deployment that exists)",
            )
        raise BadInput(
            f"secret {name!r} is not set for deployment {deployment}",
            hint=f"set it with: sudo viocli secrets set {name} -d {deployment} (-i FILE before the deployment exists)",
        )

    def set(self, name: str, value: str) -> None:
        data = self.load()
        data[name] = value
        REDACTOR.add(secret_values(value))
        self.save(data)

    def encrypt(self) -> bool:
        """Create a 0400 vault password and re-write the store encrypted; False if already so."""
        if self.encrypted:
            return False
        data = self.load()
        import secrets as random_source

        _write_atomic(self.vault_password_path, random_source.token_urlsafe(48).encode("ascii"), mode=0o400)
        self.save(data)
        return True
