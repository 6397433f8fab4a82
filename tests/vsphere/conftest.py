"""A vCenter simulator for the vsphere tests: the lab's own, on loopback with a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from viocli.inventory.load import load_inventory
from viocli.lab import simulator
from viocli.lab.control import cache_dir
from viocli.ops.context import resolve_deployment
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings
from viocli.state.store import StateStore
from viocli.vsphere.connection import connect
from viocli.vsphere.provision import provision

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def vcsim(tmp_path: Path) -> Iterator[simulator.SimulatorHandle]:
    """A fresh simulator per test (its inventory lives in memory: each test starts clean)."""
    handle = simulator.start(simulator.build(cache_dir()), tmp_path / "vcsim", "127.0.0.1", 0)
    yield handle
    simulator.stop(handle.pid)


@pytest.fixture
def lab_inventory(vcsim: simulator.SimulatorHandle, tmp_path: Path):
    """Write a lab inventory pointing at this simulator, with optional edits; returns its path."""

    def make(name: str = "lab-ha", edit=None) -> Path:
        data = yaml.safe_load((REPO / "inventory" / f"{name}.yml").read_text())
        data["vcenter"].update(host="127.0.0.1", port=vcsim.port)
        data["vcenter"]["tls"]["ca_file"] = str(vcsim.ca_file)
        if edit:
            edit(data)
        (tmp_path / "custom-lab.yml").write_text((REPO / "inventory" / "custom-lab.yml").read_text())
        path = tmp_path / f"{data['name']}.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return make


def login(vcsim: simulator.SimulatorHandle) -> Any:
    """A vCenter session on the simulator as its administrator."""
    return connect(
        "127.0.0.1", vcsim.port, vcsim.username, simulator.read_password(vcsim.password_file), ca_file=vcsim.ca_file
    )


@pytest.fixture
def deployed(vcsim, lab_inventory, viocli_env):
    """lab-ha's nine VMs provisioned in the simulator and recorded in the state store as create does."""
    settings = load_settings()
    path = lab_inventory("lab-ha")
    loaded = load_inventory(path)
    store = StateStore.open_writable(settings.db_path)
    store.register_deployment(loaded.name, path, loaded.model.mode)
    deployment = resolve_deployment(settings, store, path, None)
    store.record_nodes(deployment.name, deployment.nodes)
    si = login(vcsim)
    result = provision(si, loaded.model, deployment.nodes)
    for node, vm_id in result.vm_ids.items():
        store.update_node(deployment.name, node, vm_id=vm_id)
    store.set_deployment_status(deployment.name, "running")
    store.close()
    SecretStore(settings.deployment_dir(deployment.name)).set(
        "vcenter_password", simulator.read_password(vcsim.password_file)
    )
    return si, deployment, result.vm_ids
