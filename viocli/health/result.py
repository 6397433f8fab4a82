"""What a collector reports: findings per node, folded into one result per collector."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """A collector's verdict, ordered from good to bad (VMware's ``overall_status`` values)."""

    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILURE = "FAILURE"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.SUCCESS: 0, Status.WARNING: 1, Status.FAILURE: 2}


@dataclass(frozen=True)
class Finding:
    """One observation: what is wrong (or right), on which nodes, and what to do about it."""

    status: Status
    text: str
    nodes: tuple[str, ...] = ()
    action: str = ""


@dataclass
class Result:
    """One collector's outcome, as ``deployment status --format json`` prints it."""

    collector_name: str
    overall_status: Status
    nodes: list[str]
    message: str
    action: str = ""
    details: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this result (field names as VMware's viocli used)."""
        return {
            "collector_name": self.collector_name,
            "overall_status": str(self.overall_status),
            "nodes": list(self.nodes),
            "message": self.message,
            "action": self.action,
            "details": list(self.details),
            "elapsed_s": round(self.elapsed_s, 2),
        }


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


def conclude(
    name: str,
    findings: Sequence[Finding],
    *,
    ok: str,
    details: Iterable[str] = (),
    skipped: Sequence[str] = (),
) -> Result:
    """Fold ``findings`` into one result: the worst status, every problem, the nodes and actions.

    ``ok`` is the message when nothing is wrong. ``skipped`` names the unreachable nodes the collector
    did not check (VerifyNodeReachable reports them; they are not this collector's failure).
    """
    problems = sorted((f for f in findings if f.status is not Status.SUCCESS), key=lambda f: -f.status.rank)
    note = f" (not checked on unreachable {', '.join(skipped)})" if skipped else ""
    if not problems:
        return Result(name, Status.SUCCESS, [], ok + note, "", list(details))
    nodes = sorted({node for f in problems for node in f.nodes})
    return Result(
        collector_name=name,
        overall_status=problems[0].status,
        nodes=nodes,
        message="; ".join(_unique(f.text for f in problems)) + note,
        action="; ".join(_unique(f.action for f in problems)),
        details=list(details),
    )


def not_checked(name: str, why: str, action: str = "") -> Result:
    """A collector that could not check anything (no secret, no key, no reachable node): WARNING."""
    return Result(name, Status.WARNING, [], why, action)
