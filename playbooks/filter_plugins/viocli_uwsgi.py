"""A uwsgi-served OpenStack API's files, as ``viocli_files`` entries (one remote call with its role's files).

Debian's openstack-pkg-tools unit runs the API's init script's systemd-start, which reads
``/etc/default/<service>`` (bind address, our ini); viocli renders that and the uwsgi ini from the
service role's two templates, so every API's uwsgi settings are defined once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent.parent / "roles" / "service" / "templates"
KEYS = {"name", "project", "port", "wsgi_file", "processes", "service", "switch_daemon", "options", "threads"}


def viocli_uwsgi_files(api: dict[str, Any]) -> list[dict[str, Any]]:
    """The uwsgi ini and the init script's defaults of one API.

    ``api`` has ``name`` (its unit), ``project``, ``port``, ``wsgi_file`` and ``processes``; optional:
    ``service`` (the init script's own name when it differs from the unit's, as neutron-api's
    "neutron-server"), ``switch_daemon`` (the script runs a standalone server: run uwsgi instead),
    ``options`` (more ini lines) and ``threads``.
    """
    unknown = set(api) - KEYS
    missing = {"name", "project", "port", "wsgi_file", "processes"} - set(api)
    if unknown or missing:
        raise ValueError(f"viocli_uwsgi_files: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
    variables = {f"uwsgi_{key}": value for key, value in api.items()}
    project, name = str(api["project"]), str(api["name"])
    return [
        {
            "dest": f"/etc/{project}/{name}-uwsgi.ini",
            "src": str(TEMPLATES / "uwsgi.ini.j2"),
            "vars": variables,
            "owner": "root",
            "group": project,
            "mode": "0640",
        },
        {
            "dest": f"/etc/default/{api.get('service') or name}",
            "src": str(TEMPLATES / "uwsgi.default.j2"),
            "vars": variables,
            "owner": "root",
            "group": "root",
            "mode": "0644",
        },
    ]


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict:
        return {"viocli_uwsgi_files": viocli_uwsgi_files}
