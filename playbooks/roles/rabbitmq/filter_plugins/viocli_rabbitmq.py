"""Filters that read RabbitMQ's own reports (the rabbitmq role's start and restart actions)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# A node that was not the last to stop waits at boot for its peers' Mnesia tables; when they do not come
# back it logs `Error while waiting for Mnesia tables: {timeout_waiting_for_tables, ...}` and fails with
# "Timeout contacting cluster nodes: [...]" (rabbit_table, rabbit_prelaunch_errors).
PEERS_GONE_RE = re.compile(r"timeout_waiting_for_tables|Timeout contacting cluster nodes")
PEERS_RE = re.compile(r"Timeout contacting cluster nodes:?\s*\[([^\]]*)\]")
NODE_RE = re.compile(r"rabbit@[\w.-]+")
ERROR_RE = re.compile(r"\[error\]|\berror\b|BOOT FAILED|crash|failed|refused|denied|cannot", re.I)
LOG_PREFIX_RE = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:.]+(?:[+-]\d\d:\d\d|Z)?\s+(?:\[\w+\]\s+)?(?:<[\d.]+>\s+)?")
BANNER = {"BOOT FAILED", "==========="}


def _clean(line: str) -> str:
    return " ".join(LOG_PREFIX_RE.sub("", line.strip()).split())[:300]


def rabbitmq_boot_failure(text: str | None) -> dict[str, Any]:
    """What a node's logs say about a failed start: ``{peers_gone, peers, error}``.

    ``peers_gone``: it gave up waiting for its peers (they are gone: only ``rabbitmqctl force_boot`` lets it
    start alone); ``peers``: the nodes it waited for, when it says; ``error``: the first line that reads as
    an error, without its timestamp.
    """
    text = str(text or "")
    peers_gone = bool(PEERS_GONE_RE.search(text))
    listed = PEERS_RE.findall(text)
    peers = sorted(set(NODE_RE.findall(listed[-1]))) if listed else []
    if peers_gone and not peers:
        waits = re.findall(r"timeout_waiting_for_tables,\s*\[([^\]]*)\]", text)
        peers = sorted(set(NODE_RE.findall(waits[-1]))) if waits else []
    lines = [_clean(line) for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if line and line not in BANNER]
    errors = [line for line in lines if ERROR_RE.search(line)]
    if peers_gone:
        error = f"timed out waiting for its peers {', '.join(peers) or '(unnamed)'} (Timeout contacting cluster nodes)"
    else:
        error = (errors or lines or ["nothing in its logs"])[0]
    return {"peers_gone": peers_gone, "peers": peers, "error": error}


def rabbitmq_cluster_problems(status: str | dict | None, expected: Iterable[str]) -> list[str]:
    """What ``rabbitmqctl cluster_status --formatter json`` shows wrong: expected nodes not running, and
    partitions (empty when the cluster is whole)."""
    try:
        data = json.loads(status) if isinstance(status, str) else dict(status or {})
    except ValueError:
        return [f"unreadable cluster status: {' '.join(str(status).split())[:200]}"]
    running = set(data.get("running_nodes") or [])
    problems = [f"{node} not running" for node in expected if node not in running]
    partitions = data.get("partitions") or {}
    if isinstance(partitions, dict):
        problems += [f"{node} partitioned from {', '.join(map(str, others))}" for node, others in partitions.items()]
    else:
        problems += [f"partition {item}" for item in partitions]
    return problems


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict:
        return {"rabbitmq_boot_failure": rabbitmq_boot_failure, "rabbitmq_cluster_problems": rabbitmq_cluster_problems}
