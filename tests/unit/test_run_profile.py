"""viocli.runner.profile: where a run's time went, from ansible-runner's job events."""

from __future__ import annotations

from viocli.runner.profile import profile_events, render_profile


def _event(kind: str, second: float, **data: object) -> dict:
    minute, rest = divmod(second, 60)
    return {"event": kind, "created": f"2026-12-06T04:{int(minute):02d}:{rest:06.3f}+00:00", "event_data": data}


EVENTS = [
    _event("playbook_on_start", 0.0),
    _event("playbook_on_play_start", 0.0, play="Common"),
    _event("playbook_on_task_start", 0.5, task="Render", task_uuid="t1", role="common", play="Common"),
    _event("runner_on_ok", 1.4, host="a", task_uuid="t1", duration=0.8, res={"changed": True}),
    _event("runner_on_ok", 2.0, host="b", task_uuid="t1", duration=1.4, res={"changed": False}),
    _event("playbook_on_task_start", 2.5, task="Check", task_uuid="t2", role="common", play="Common"),
    _event("runner_on_skipped", 2.6, host="a", task_uuid="t2", duration=0.0),
    _event("playbook_on_play_start", 3.0, play="Nova"),
    _event("playbook_on_task_start", 3.0, task="Migrate", task_uuid="t3", role="service", play="Nova"),
    _event("runner_on_ok", 13.0, host="a", task_uuid="t3", duration=9.9, res={"changed": True}),
    _event("playbook_on_stats", 13.5),
]


def test_a_task_waits_from_its_start_to_the_next_boundary_and_hosts_count_their_module_time() -> None:
    profile = profile_events(EVENTS)
    assert round(profile.total, 3) == 13.5
    render, check, migrate = profile.tasks
    assert (render.name, round(render.wall, 3), render.changed) == ("Render", 2.0, 1)
    assert render.hosts == {"a": 0.8, "b": 1.4} and render.slowest_host == ("b", 1.4)
    assert (round(check.wall, 3), check.skipped) == (0.5, 1)
    assert round(migrate.wall, 3) == 10.5  # to the stats event: the end of the run
    assert {k: round(v, 3) for k, v in profile.plays.items()} == {"Common": 3.0, "Nova": 10.5}
    assert {k: round(v, 3) for k, v in profile.host_busy.items()} == {"a": 10.7, "b": 1.4}
    assert [(role, round(s, 3), n) for role, s, n in profile.by_role()] == [("service", 10.5, 1), ("common", 2.5, 2)]
    assert [t.name for t in profile.slowest(2)] == ["Migrate", "Render"]


def test_the_report_names_the_slowest_tasks_first() -> None:
    text = render_profile(profile_events(EVENTS), "a run", top=2)
    assert text.startswith("# a run\n")
    assert "total 13.5 s, 3 tasks" in text and "1 host results skipped, 2 changed" in text
    slowest = text.split("## the 2 slowest tasks")[1].split("## hosts")[0]
    assert slowest.index("service: Migrate") < slowest.index("common: Render") and "Check" not in slowest


def test_an_empty_run_has_an_empty_profile() -> None:
    profile = profile_events([])
    assert profile.total == 0.0 and profile.tasks == [] and "total 0.0 s, 0 tasks" in render_profile(profile, "x")
