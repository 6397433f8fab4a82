"""Filters that turn a secret into what its consumer stores, computed on the OMS.

A MariaDB password reaches the database only as its ``mysql_native_password`` hash: a statement
with the plain password would be replicated into every member's Galera cache (galera.cache).
"""

from __future__ import annotations

import hashlib


def mysql_native_password(password: str) -> str:
    """The ``mysql_native_password`` hash of ``password``: ``*`` and SHA1(SHA1(password)) in upper hex."""
    inner = hashlib.sha1(str(password).encode("utf-8")).digest()  # the format MariaDB defines
    return "*" + hashlib.sha1(inner).hexdigest().upper()


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict:
        return {"mysql_native_password": mysql_native_password}
