"""The one name rule for deployments and nodes: lower-case letters, digits and inner dashes.

A name becomes a directory under the state dir, a lock file, a VM folder and a host name, so it
must never hold a path separator, a dot, a space, a shell metacharacter or a leading dash.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "2 to 32 lower-case letters, digits and dashes, starting with a letter and not ending with a dash"


def is_valid_name(value: object) -> bool:
    """True when ``value`` is a string that follows the name rule."""
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None
