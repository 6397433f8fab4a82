"""The shipped lab inventories, and the simulator password they need in the secrets store."""

from __future__ import annotations

from pathlib import Path

import yaml

from viocli.lab.control import LabState
from viocli.secrets.store import SecretStore
from viocli.settings import Settings, share_dir


def lab_inventories() -> list[Path]:
    """``inventory/lab-*.yml`` as shipped."""
    return sorted(share_dir("inventory").glob("lab-*.yml"))


def store_lab_secrets(settings: Settings, state: LabState) -> list[str]:
    """Give each lab deployment the simulator's password under its vcenter.password_secret name."""
    credentials = Path(state.data["vcsim"]["credentials"]).read_text(encoding="utf-8").splitlines()
    password = credentials[1]
    names = []
    for path in lab_inventories():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = data["name"]
        secret = data["vcenter"].get("password_secret", "vcenter_password")
        store = SecretStore(settings.deployment_dir(name))
        if store.load().get(secret) != password:
            store.set(secret, password)
        names.append(name)
    return names
