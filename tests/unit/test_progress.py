"""Progress display fed by runner events: the live line and the plain-text form."""

from __future__ import annotations

import io

from viocli.runner.progress import RunProgress, result_hint, result_message

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


def test_a_failed_loop_names_the_item_and_its_own_error() -> None:
    data = {
        "res": {
            "msg": "One or more items failed",
            "results": [
                {"item": "loadbalancer01", "failed": False, "rc": 0},
                {
                    "item": "loadbalancer02",
                    "_ansible_item_label": "loadbalancer02",
                    "failed": True,
                    "msg": "non-zero return code",
                    "rc": 1,
                    "stderr": (
                        '2026/12/02 socat[7] E connect(5, AF=1 "/run/haproxy/admin.sock", 25): No such file\nmore'
                    ),
                    "viocli_hint": "start HAProxy on loadbalancer02",
                },
            ],
        }
    }
    assert result_message(data) == (
        'loadbalancer02: 2026/12/02 socat[7] E connect(5, AF=1 "/run/haproxy/admin.sock", 25): No such file'
    )
    assert result_hint(data) == "start HAProxy on loadbalancer02"


def test_a_command_failure_shows_its_stderr_not_the_generic_message() -> None:
    res = {"msg": "non-zero return code", "rc": 1, "stderr": "\nhaproxy: cannot bind 10.203.0.90:5000\nnext"}
    assert result_message({"res": res}) == "haproxy: cannot bind 10.203.0.90:5000"
    assert (
        result_message({"res": {"msg": "haproxy: cannot bind socket", "stderr": "x"}}) == "haproxy: cannot bind socket"
    )
    assert result_hint({"res": res}) is None
