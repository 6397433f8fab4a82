"""The one name rule for deployments and nodes: lower-case letters, digits and inner dashes.

A name becomes a directory under the state dir, a lock file, a VM folder and a host name, so it
must never hold a path separator, a dot, a space, a shell metacharacter or a leading dash.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from viocli.errors import BadInput

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "2 to 32 lower-case letters, digits and dashes, starting with a letter and not ending with a dash"


def is_valid_name(value: object) -> bool:
    """True when ``value`` is a string that follows the name rule."""
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def _shown(value: object) -> str:
    """``value`` as quoted in an error: repr (so control characters stay visible), cut short."""
    text = repr(value)
    return text if len(text) <= 50 else f"{text[:47]}..."


def check_deployment_name(value: object, source: str | None = None) -> str:
    """Return ``value`` when it follows the name rule, else raise BadInput naming the rule.

    ``source`` says where the value came from (``-d``, ``VIOCLI_DEPLOYMENT``, a config file) so
    the operator knows what to fix; the empty string is refused like any other invalid name.
    """
    if is_valid_name(value):
        return value  # type: ignore[return-value]
    where = f"{source} " if source else ""
    raise BadInput(f"{where}{_shown(value)} is not a valid deployment name: a deployment name is {NAME_RULE}")


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (a likely typo), or None when nothing is close."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1)
    return close[0] if close else None
