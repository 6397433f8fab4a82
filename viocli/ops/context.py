"""Find the deployment a command acts on and resolve it to concrete nodes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from viocli.errors import BadInput
from viocli.inventory.load import LoadedInventory, load_inventory
from viocli.inventory.topology import Node, allocate, resolve_nodes
from viocli.names import check_deployment_name, did_you_mean
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


CREATE_HINT = "only `sudo viocli deployment create -i FILE` creates a deployment"


def deployment_name(
    settings: Settings, explicit: str | None, store: StateStore | None, *, unknown_hint: str | None = None
) -> str:
    """The deployment a command acts on: ``-d NAME``, else the configured default, else the only one.

    The name must follow the name rule and be a deployment the state store knows (BadInput with
    a did-you-mean otherwise); ``unknown_hint`` replaces the hint given for an unknown one.
    """
    if explicit is not None:
        return known_deployment(check_deployment_name(explicit, "-d"), store, "", unknown_hint)
    if settings.default_deployment is not None:
        source = settings.default_deployment_source
        name = check_deployment_name(settings.default_deployment, f"the default deployment ({source})")
        return known_deployment(name, store, f" (the default, from {source})", unknown_hint)
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


def known_deployment(name: str, store: StateStore | None, origin: str = "", hint: str | None = None) -> str:
    """``name`` when the state store has it; else BadInput with the closest known name, if any."""
    known = [d.name for d in store.deployments()] if store else []
    if name in known:
        return name
    close = did_you_mean(name, known)
    guess = f"; did you mean {close}?" if close else ""
    if hint is None:
        hint = f"known deployments: {', '.join(known)}; " if known else "no deployment exists on this OMS yet; "
        hint += CREATE_HINT
    raise BadInput(f"deployment {name!r}{origin} is not known on this OMS{guess}", hint=hint)


@contextmanager
def _read_store(settings: Settings) -> Iterator[StateStore | None]:
    """The state store opened read-only (None when it does not exist: it is never created), closed after."""
    store = StateStore.open_readonly(settings.db_path)
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def require_known_deployment(settings: Settings, name: str, source: str = "NAME") -> str:
    """Check a deployment name given as an argument: the name rule, then the state store (read-only)."""
    check_deployment_name(name, source)
    with _read_store(settings) as store:
        return known_deployment(name, store)


def target_name(
    settings: Settings, inventory_path: Path | None, explicit: str | None, *, unknown_hint: str | None = None
) -> str:
    """The deployment name a command acts on, without resolving its nodes.

    With ``-i FILE`` it is the validated inventory's name (the deployment may not exist yet, as
    when the operator stores the vCenter password before ``deployment create``); otherwise it is
    :func:`deployment_name` against the state store, opened read-only (never created).
    """
    if inventory_path is not None:
        loaded = load_inventory(inventory_path)
        _check_matches(explicit, loaded)
        return loaded.name
    with _read_store(settings) as store:
        return deployment_name(settings, explicit, store, unknown_hint=unknown_hint)


def _check_matches(explicit: str | None, loaded: LoadedInventory) -> None:
    """``-d NAME`` given with ``-i FILE`` must name the inventory's deployment."""
    if explicit is not None and explicit != loaded.name:
        raise BadInput(
            f"-d {explicit} does not match the inventory's name {loaded.name!r} ({loaded.path})",
            hint="drop -d, or pass the inventory of that deployment",
        )


def resolve_deployment(
    settings: Settings, store: StateStore | None, inventory_path: Path | None, explicit_name: str | None
) -> Deployment:
    """Load the inventory (``-i`` or the deployment's recorded one) and resolve its nodes.

    Addresses already recorded in the state store are kept (stable allocation).
    """
    if inventory_path is not None:
        loaded = load_inventory(inventory_path)
        _check_matches(explicit_name, loaded)
    else:
        name = deployment_name(settings, explicit_name, store)
        record = store.deployment(name) if store else None
        if record is None:  # deployment_name checked it; the store changed under us
            raise BadInput(
                f"deployment {name!r} is not known on this OMS",
                hint="pass its inventory file with -i FILE",
            )
        loaded = load_inventory(record.inventory_path)
    known = store is not None and store.deployment(loaded.name) is not None
    previous = store.addresses(loaded.name) if store is not None else {}
    nodes = resolve_nodes(loaded.model, allocate(loaded.model, previous))
    return Deployment(loaded=loaded, nodes=nodes, known=known)
