"""A vCenter simulator for the vsphere tests: the lab's own, on loopback with a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from viocli.lab import simulator
from viocli.lab.control import cache_dir

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
