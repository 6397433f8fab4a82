"""How backups are named on a target: ``vio_os_db_YYYYmmddHHMMSS`` and ``vio_ms_YYYYmmddHHMMSS`` (UTC).

A backup is written into ``.partial-NAME`` and renamed to ``NAME`` only after its manifest, written
last, is on stable storage: a directory named like a backup is a complete one; anything else is not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from viocli.errors import BadInput

KINDS = {"openstack_db": "vio_os_db_", "mgmt_server": "vio_ms_"}
PARTIAL_PREFIX = ".partial-"
MANIFEST = "manifest.json"
STAMP = "%Y%m%d%H%M%S"
_NAME = re.compile(r"(vio_os_db_|vio_ms_)(\d{14})")


def new_name(kind: str, when: datetime | None = None) -> str:
    """The name of a backup of ``kind`` taken at ``when`` (now, UTC, by default)."""
    return KINDS[kind] + (when or datetime.now(UTC)).strftime(STAMP)


def kind_of(name: str) -> str | None:
    """``openstack_db`` or ``mgmt_server`` for a backup's name; None for any other name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return next(kind for kind, prefix in KINDS.items() if prefix == match.group(1))


def taken_at(name: str) -> str | None:
    """When a backup named ``name`` was taken (ISO 8601, UTC), from its name; None for another name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return datetime.strptime(match.group(2), STAMP).replace(tzinfo=UTC).isoformat()


def partial(name: str) -> str:
    """The directory a backup is written into until it is complete."""
    return PARTIAL_PREFIX + name


def unfinished(entry: str) -> str | None:
    """The backup an unfinished ``.partial-NAME`` directory was for, else None."""
    if entry.startswith(PARTIAL_PREFIX) and kind_of(entry[len(PARTIAL_PREFIX) :]):
        return entry[len(PARTIAL_PREFIX) :]
    return None


def check_name(name: str, kind: str | None = None, where: str = "BACKUP_NAME") -> str:
    """``name`` when it is a backup's name (of ``kind``, if given); BadInput (exit 2) otherwise."""
    found = kind_of(name)
    if found is None:
        raise BadInput(
            f"{where} {name!r} is not a backup's name",
            hint="backups are named vio_os_db_YYYYmmddHHMMSS or vio_ms_YYYYmmddHHMMSS; "
            "list them with: viocli backup list NFS_VOLUME",
        )
    if kind is not None and found != kind:
        raise BadInput(
            f"{where} {name} is a {found} backup, not a {kind} one",
            hint=f"{kind} backups are named {KINDS[kind]}YYYYmmddHHMMSS",
        )
    return name
