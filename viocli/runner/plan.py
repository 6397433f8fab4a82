"""What one Ansible run is: a playbook with tags, limit, variables and mode flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PlaybookRun:
    """One ``ansible-playbook`` invocation, as an operation asks for it.

    ``extravars`` are the command's own variables (always ``viocli_*``); the operator's custom.yml
    and ``-e`` are merged in by the engine, below them in name space and above everything else.
    """

    playbook: str
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    limit: str | None = None
    extravars: Mapping[str, Any] = field(default_factory=dict)
    check: bool = False
    diff: bool = False

    def cmdline(self) -> str | None:
        """Flags passed through runner's ``cmdline`` (never anything secret)."""
        flags = [flag for flag, on in (("--check", self.check), ("--diff", self.diff)) if on]
        return " ".join(flags) or None
