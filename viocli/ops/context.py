"""Find the deployment a command acts on and resolve it to concrete nodes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from viocli.errors import BadInput
from viocli.inventory.load import LoadedInventory, load_inventory
from viocli.inventory.topology import Node, allocate, resolve_nodes
from viocli.settings import Settings
from viocli.state.store import StateStore


@dataclass
class Deployment:
    """A validated inventory resolved against what the state store knows."""

    loaded: LoadedInventory
    nodes: list[Node]
    known: bool  # recorded in the state store

    @property
    def name(self) -> str:
        return self.loaded.name

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)


def deployment_name(settings: Settings, explicit: str | None, store: StateStore | None) -> str:
    """``-d NAME``, else viocli.conf's default, else the only deployment on this OMS."""
    if explicit:
        return explicit
    if settings.default_deployment:
        return settings.default_deployment
    known = store.deployments() if store else []
    if len(known) == 1:
        return known[0].name
    if not known:
        raise BadInput(
            "no deployment given and none exists on this OMS",
            hint="pass the inventory file with -i FILE",
        )
    names = ", ".join(d.name for d in known)
    raise BadInput(f"several deployments exist ({names}); say which with -d NAME")


def resolve_deployment(
    settings: Settings, store: StateStore | None, inventory_path: Path | None, explicit_name: str | None
) -> Deployment:
    """Load the inventory (``-i`` or the deployment's recorded one) and resolve its nodes.

    Addresses already recorded in the state store are kept (stable allocation).
    """
    if inventory_path is not None:
        loaded = load_inventory(inventory_path)
        if explicit_name and explicit_name != loaded.name:
            raise BadInput(
                f"-d {explicit_name} does not match the inventory's name {loaded.name!r} ({inventory_path})",
                hint="drop -d, or pass the inventory of that deployment",
            )
    else:
        name = deployment_name(settings, explicit_name, store)
        record = store.deployment(name) if store else None
        if record is None:
            raise BadInput(
                f"deployment {name!r} is not known on this OMS",
                hint="pass its inventory file with -i FILE",
            )
        loaded = load_inventory(record.inventory_path)
    known = store is not None and store.deployment(loaded.name) is not None
    previous = store.addresses(loaded.name) if store is not None else {}
    nodes = resolve_nodes(loaded.model, allocate(loaded.model, previous))
    return Deployment(loaded=loaded, nodes=nodes, known=known)
