"""The service descriptors (playbooks/group_vars/all/services.yml) as viocli's Python code reads them.

The playbooks and this module read the same file, so a service's ports, units and HAProxy frontends
are defined once. A port is a variable of its own (``keystone_port: 5000``) that custom.yml or ``-e``
may override; a descriptor refers to it as ``"{{ keystone_port }}"``, which is the only template
form this reader resolves (the descriptor file is ours, never data).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from viocli.errors import BadInput
from viocli.settings import share_dir

DESCRIPTOR = Path("group_vars") / "all" / "services.yml"
_REFERENCE = re.compile(r"^\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}$")


@dataclass(frozen=True)
class Unit:
    """A systemd unit of a service."""

    name: str
    files: tuple[str, ...]
    packages: tuple[str, ...]
    enabled: bool
    reload: bool


@dataclass(frozen=True)
class Frontend:
    """An HAProxy frontend of a service: the internal VIP, and the external VIP unless ``external`` is false."""

    name: str
    port: int
    external: bool
    external_port: int
    check: str


@dataclass(frozen=True)
class Service:
    """One service descriptor with its ports resolved."""

    name: str
    group: str
    units: tuple[Unit, ...]
    frontends: tuple[Frontend, ...]
    catalog: tuple[dict[str, Any], ...]
    logs: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    diagnostics: tuple[tuple[str, str], ...] = ()  # (name, shell command) whose output tells its state


@cache
def _raw(playbook_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((playbook_dir / DESCRIPTOR).read_text(encoding="utf-8"))


def _resolver(raw: Mapping[str, Any], overrides: Mapping[str, Any]):
    def port(value: Any, where: str) -> int:
        match = _REFERENCE.match(value) if isinstance(value, str) else None
        if match:
            name = match.group(1)
            value = overrides.get(name, raw.get(name))
            where = f"{name} (for {where})"
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise BadInput(f"{where}: {value!r} is not a port (1-65535)", hint="fix it in custom.yml")
        return value

    return port


def load_services(overrides: Mapping[str, Any] | None = None, playbook_dir: Path | None = None) -> list[Service]:
    """Every service descriptor, ports resolved with ``overrides`` (custom.yml and ``-e``) on top."""
    raw = _raw(playbook_dir or share_dir("playbooks"))
    port = _resolver(raw, overrides or {})
    services = []
    for name, entry in raw["viocli_services"].items():
        units = tuple(
            Unit(
                name=u["name"],
                files=tuple(u.get("files", ())),
                packages=tuple(u.get("packages", ())),
                enabled=bool(u.get("enabled", True)),
                reload=bool(u.get("reload", False)),
            )
            for u in entry["units"]
        )
        frontends = []
        for f in entry.get("haproxy", ()):
            internal = port(f["port"], f"{name} frontend {f['name']}")
            external = port(f.get("external_port", f["port"]), f"{name} frontend {f['name']}")
            exposed = bool(f.get("external", True))
            frontends.append(Frontend(f["name"], internal, exposed, external, f.get("check", "http")))
        catalog = tuple(
            {**c, "port": port(c["port"], f"{name} catalog entry {c['name']}")} for c in entry.get("catalog", ())
        )
        services.append(
            Service(
                name,
                entry["group"],
                units,
                tuple(frontends),
                catalog,
                logs=tuple(entry.get("logs", ())),
                config=tuple(entry.get("config", ())),
                diagnostics=tuple((d["name"], d["command"]) for d in entry.get("diagnostics", ())),
            )
        )
    return services


def external_apis(
    overrides: Mapping[str, Any] | None = None, playbook_dir: Path | None = None
) -> list[tuple[str, int]]:
    """(frontend name, port) of every API HAProxy publishes on the external VIP."""
    return [
        (frontend.name, frontend.external_port)
        for service in load_services(overrides, playbook_dir)
        for frontend in service.frontends
        if frontend.external
    ]


def port_variable(name: str, overrides: Mapping[str, Any] | None = None, playbook_dir: Path | None = None) -> int:
    """A port the descriptors define as a variable (``memcached_port``), with custom.yml on top."""
    raw = _raw(playbook_dir or share_dir("playbooks"))
    if name not in raw:
        raise BadInput(f"{name} is not a port of the service descriptors", hint="reinstall viocli's playbooks")
    return _resolver(raw, overrides or {})("{{ " + name + " }}", name)
