"""Progress display fed by runner events: the live line and the plain-text form."""

from __future__ import annotations

import io

from viocli.runner.progress import RunProgress

EVENTS = [
    {"event": "playbook_on_play_start", "event_data": {"play": "Configure nova"}},
    {"event": "playbook_on_task_start", "event_data": {"task": "Render nova.conf"}},
    {"event": "runner_on_ok", "event_data": {"host": "controller01", "res": {"changed": True}}},
    {"event": "runner_on_ok", "event_data": {"host": "controller02", "res": {"changed": False}}},
    {"event": "runner_on_failed", "event_data": {"host": "compute01", "res": {"msg": "boom"}}},
    {"event": "runner_on_failed", "event_data": {"host": "compute02", "ignore_errors": True, "res": {"msg": "x"}}},
    {"event": "runner_on_unreachable", "event_data": {"host": "database01", "res": {"msg": "No route to host"}}},
]


def test_live_line_shows_play_task_counts_and_elapsed() -> None:
    stream = io.StringIO()
    progress = RunProgress("vio-prod: configure.yml", stream=stream, live=True)
    with progress:
        for event in EVENTS:
            progress.on_event(event)
        line = progress._render().plain
    assert "PLAY [Configure nova]" in line and "TASK [Render nova.conf]" in line
    assert "ok 2 changed 1 failed 1 unreachable 1" in line
    assert line.rstrip().endswith("00:00")
    assert "FAILED: compute01: TASK [Render nova.conf]: boom" in stream.getvalue()


def test_plain_output_for_pipes_and_verbose_detail() -> None:
    stream = io.StringIO()
    with RunProgress("vio-prod: configure.yml", stream=stream, live=False, verbosity=1) as progress:
        for event in EVENTS:
            progress.on_event(event)
        progress.recap({"ok": {"controller01": 5}, "changed": {"controller01": 1}, "failures": {"compute01": 1}})
    text = stream.getvalue()
    assert "PLAY [Configure nova]" in text
    assert "  TASK [Render nova.conf]" in text
    assert "    changed: controller01" in text
    assert "UNREACHABLE: database01: TASK [Render nova.conf]: No route to host" in text
    assert "FAILED: compute02" not in text and "    ok: compute02" in text  # an ignored failure is no failure
    assert "controller01  ok=5 changed=1 failed=0 unreachable=0 skipped=0" in text
