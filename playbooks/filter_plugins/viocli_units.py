"""Filters that build systemd unit descriptors (see playbooks/group_vars/all/services.yml)."""

from __future__ import annotations

from typing import Any


def viocli_unit(name: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """A unit descriptor named ``name``; ``NAME`` in the template's file paths becomes the name.

    For units a role makes per item (one nova-compute per vSphere cluster): the template holds what
    every such unit shares.
    """
    unit: dict[str, Any] = {key: value for key, value in (template or {}).items() if key != "files"}
    unit["name"] = str(name)
    unit["files"] = [str(path).replace("NAME", str(name)) for path in (template or {}).get("files", [])]
    return unit


def viocli_units_on(units: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    """The units as they should be on ``host``: a unit whose descriptor names another ``node`` (the
    active one of an active/passive service) is kept stopped here (``active: false``)."""
    placed = []
    for unit in units:
        node = unit.get("node")
        placed.append({**unit, "active": False} if node and str(node) != str(host) else dict(unit))
    return placed


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict:
        return {"viocli_unit": viocli_unit, "viocli_units_on": viocli_units_on}
