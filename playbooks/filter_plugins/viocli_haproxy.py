"""Filters over the HAProxy frontends of the service descriptors (playbooks/group_vars/all/services.yml)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def haproxy_backends(frontends: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of the HAProxy sections the frontends become: ``<name>_internal``, and
    ``<name>_external`` unless the frontend says ``external: false`` (as haproxy.cfg.j2 renders them)."""
    names = []
    for frontend in frontends:
        names.append(f"{frontend['name']}_internal")
        if frontend.get("external", True):
            names.append(f"{frontend['name']}_external")
    return names


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict:
        return {"haproxy_backends": haproxy_backends}
