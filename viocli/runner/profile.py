"""Where a run's time went: per task, per role, per play and per host, from ansible-runner's job events.

The events are already in every run's artifacts (``job_events/``), so profiling costs nothing at run
time and works on any past run. A task's *wall* time is from its start event to the next task's (or the
play's end): with the linear strategy that is what the run waited on it, Ansible's own overhead
(templating, forking, connecting) included. A host's *busy* time is the sum of its result events'
durations. The gap between the two is what Ansible spent around the modules.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viocli.runner.engine import read_events

_HOST_RESULTS = {
    "runner_on_ok",
    "runner_on_failed",
    "runner_on_skipped",
    "runner_on_unreachable",
}
_TASK_STARTS = {"playbook_on_task_start", "playbook_on_handler_task_start"}
_BOUNDARIES = {*_TASK_STARTS, "playbook_on_play_start", "playbook_on_stats"}


@dataclass
class TaskTiming:
    """One task as the run waited on it."""

    name: str
    role: str
    play: str
    wall: float = 0.0
    hosts: dict[str, float] = field(default_factory=dict)  # host -> seconds its module took
    changed: int = 0
    skipped: int = 0

    @property
    def slowest_host(self) -> tuple[str, float]:
        if not self.hosts:
            return ("-", 0.0)
        host = max(self.hosts, key=lambda h: self.hosts[h])
        return host, self.hosts[host]


@dataclass
class RunProfile:
    """A whole run's timing, in task order."""

    total: float
    tasks: list[TaskTiming]
    plays: dict[str, float]
    host_busy: dict[str, float]

    def by_role(self) -> list[tuple[str, float, int]]:
        """(role, wall seconds, task count), slowest first."""
        walls: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for task in self.tasks:
            walls[task.role] += task.wall
            counts[task.role] += 1
        return sorted(((r, walls[r], counts[r]) for r in walls), key=lambda row: -row[1])

    def slowest(self, count: int = 25) -> list[TaskTiming]:
        return sorted(self.tasks, key=lambda t: -t.wall)[:count]


def _created(event: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(event["created"]).timestamp()


def profile_events(events: list[dict[str, Any]]) -> RunProfile:
    """Build a run's profile from its job events (as :func:`read_events` returns them)."""
    tasks: dict[str, TaskTiming] = {}
    order: list[str] = []
    plays: dict[str, float] = defaultdict(float)
    host_busy: dict[str, float] = defaultdict(float)
    open_task: tuple[str, float] | None = None
    open_play: tuple[str, float] | None = None
    first = last = None

    def close(until: float) -> None:
        nonlocal open_task
        if open_task is not None:
            uuid, started = open_task
            tasks[uuid].wall += max(0.0, until - started)
            open_task = None

    for event in events:
        kind = event.get("event")
        data = event.get("event_data", {})
        if "created" not in event:
            continue
        when = _created(event)
        first = when if first is None else first
        last = when
        if kind in _BOUNDARIES:
            close(when)
            if kind in {"playbook_on_play_start", "playbook_on_stats"} and open_play is not None:
                plays[open_play[0]] += when - open_play[1]
                open_play = None
        if kind == "playbook_on_play_start":
            open_play = (data.get("play", "?"), when)
        elif kind in _TASK_STARTS:
            uuid = data.get("task_uuid", str(len(order)))
            if uuid not in tasks:
                tasks[uuid] = TaskTiming(
                    name=data.get("task", "?"), role=data.get("role") or "(play)", play=data.get("play", "?")
                )
                order.append(uuid)
            open_task = (uuid, when)
        elif kind in _HOST_RESULTS:
            uuid = data.get("task_uuid")
            timing = tasks.get(uuid)
            duration = float(data.get("duration") or 0.0)
            host = data.get("host", "?")
            host_busy[host] += duration
            if timing is not None:
                timing.hosts[host] = timing.hosts.get(host, 0.0) + duration
                result = data.get("res") or {}
                timing.changed += bool(result.get("changed"))
                timing.skipped += kind == "runner_on_skipped"
    if last is not None:
        close(last)
        if open_play is not None:
            plays[open_play[0]] += last - open_play[1]
    total = (last - first) if first is not None and last is not None else 0.0
    return RunProfile(total=total, tasks=[tasks[u] for u in order], plays=dict(plays), host_busy=dict(host_busy))


def profile_run(artifact_dir: Path) -> RunProfile:
    """The profile of a finished run from its artifact directory."""
    return profile_events(read_events(artifact_dir))


def render_profile(profile: RunProfile, title: str, top: int = 30) -> str:
    """A plain-text report: totals, plays, roles, the slowest tasks and each host's busy time."""
    lines = [f"# {title}", ""]
    task_wall = sum(t.wall for t in profile.tasks)
    lines.append(
        f"total {profile.total:.1f} s, {len(profile.tasks)} tasks "
        f"(their wall time {task_wall:.1f} s; {sum(t.skipped for t in profile.tasks)} host results skipped, "
        f"{sum(t.changed for t in profile.tasks)} changed)"
    )
    lines += ["", "## plays", f"{'seconds':>8}  play"]
    lines += [f"{s:8.1f}  {p}" for p, s in sorted(profile.plays.items(), key=lambda kv: -kv[1])]
    lines += ["", "## roles", f"{'seconds':>8} {'tasks':>6}  role"]
    lines += [f"{s:8.1f} {n:6d}  {r}" for r, s, n in profile.by_role()]
    lines += ["", f"## the {top} slowest tasks", f"{'wall':>7} {'slowest host':>22} {'hosts':>5}  role: task"]
    for task in profile.slowest(top):
        host, seconds = task.slowest_host
        lines.append(f"{task.wall:7.2f} {host + f' {seconds:.2f}':>22} {len(task.hosts):5d}  {task.role}: {task.name}")
    lines += ["", "## hosts (seconds inside modules)", f"{'busy':>8}  host"]
    lines += [f"{s:8.1f}  {h}" for h, s in sorted(profile.host_busy.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines) + "\n"
