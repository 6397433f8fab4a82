"""The restart rule of the viocli_units module: a unit is stale when a file it reads, or its package,
is newer than the moment it last took its configuration (start, or reload for reloading units)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.playbook_code import load

MODULE = Path(__file__).resolve().parents[2] / "playbooks" / "library" / "viocli_units.py"


@pytest.fixture(scope="module")
def units():
    return load(MODULE)


def test_systemd_timestamps_parse_to_epoch_seconds(units) -> None:
    assert units.parse_timestamp("Wed 2026-12-02 10:30:18.250000 UTC") == pytest.approx(1796207418.25)
    assert units.parse_timestamp("") is None
    assert units.parse_timestamp("n/a") is None


def test_a_file_newer_than_the_process_makes_the_unit_stale(units, tmp_path: Path) -> None:
    conf, other = tmp_path / "a.conf", tmp_path / "b.conf"
    conf.write_text("x")
    other.write_text("y")
    os.utime(conf, (1000, 1000))
    os.utime(other, (3000, 3000))
    unit = {"name": "x", "files": [str(conf), str(other), str(tmp_path / "absent.conf")]}
    assert units.changed_since(unit, 2000) == [str(other)]
    assert units.changed_since(unit, 4000) == []


def test_a_package_installed_after_the_start_makes_the_unit_stale(units, monkeypatch) -> None:
    monkeypatch.setattr(units, "package_mtime", lambda package: {"nova-api": 5000.0}.get(package))
    unit = {"name": "nova-api", "packages": ["nova-api", "python3-nova"]}
    assert units.changed_since(unit, 4000) == ["package nova-api"]
    assert units.changed_since(unit, 6000) == []


def test_a_reload_after_the_start_counts_as_taking_the_configuration(units, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(units, "RELOAD_MARKS", str(tmp_path))
    props = {"ActiveEnterTimestamp": "Wed 2026-12-02 10:30:18.000000 UTC"}
    started = units.parse_timestamp(props["ActiveEnterTimestamp"])
    assert units.running_since("haproxy", props) == started
    mark = tmp_path / "haproxy"
    mark.write_text("")
    os.utime(mark, (started + 60, started + 60))
    assert units.running_since("haproxy", props) == started + 60
    os.utime(mark, (started - 60, started - 60))  # a mark from before the last start (a reboot keeps none)
    assert units.running_since("haproxy", props) == started
    assert units.running_since("haproxy", {"ActiveEnterTimestamp": ""}) is None


def test_a_unit_being_started_or_restarted_counts_as_running_for_a_stop(units) -> None:
    assert units.running({"ActiveState": "active", "SubState": "running"})
    assert units.running({"ActiveState": "activating", "SubState": "start"})
    assert units.running({"ActiveState": "activating", "SubState": "auto-restart"})
    assert units.running({"ActiveState": "failed", "SubState": "auto-restart"})
    assert not units.running({"ActiveState": "inactive", "SubState": "dead"})
    assert not units.running({"ActiveState": "failed", "SubState": "failed"})


def test_a_unit_systemd_is_still_restarting_is_judged_once_it_settles(units, monkeypatch) -> None:
    """nova-scheduler failing its first start while Keystone restarts is not a failure if systemd's
    Restart=on-failure brings it up; one that systemd gave up on is."""
    states = iter(
        [
            {"a": ("activating", "auto-restart"), "b": ("failed", "failed")},
            {"a": ("activating", "start"), "b": ("failed", "failed")},
            {"a": ("active", "running"), "b": ("failed", "failed")},
        ]
    )

    def show(_module, names):
        now = next(states)
        return {n: {"ActiveState": now[n][0], "SubState": now[n][1]} for n in names}

    monkeypatch.setattr(units, "show", show)
    monkeypatch.setattr(units.time, "sleep", lambda _s: None)
    assert units.settle(None, ["a", "b"]) == ["b"]


def test_a_unit_that_keeps_restarting_fails_when_the_settle_time_is_over(units, monkeypatch) -> None:
    monkeypatch.setattr(units, "show", lambda _m, names: {n: {"ActiveState": "activating"} for n in names})
    monkeypatch.setattr(units.time, "sleep", lambda _s: None)
    assert units.settle(None, ["a"], seconds=0) == ["a"]


def test_a_failed_start_that_systemd_made_good_is_no_failure(units, monkeypatch) -> None:
    """systemctl start exits 1 (nova-conductor could not reach the database yet), systemd restarts it and
    it runs: the start succeeded. Found when tiny's services started right after a database restore."""

    class Module:
        def run_command(self, argv: list[str]):
            return 1, "", "Job for nova-conductor.service failed"

    monkeypatch.setattr(
        units, "show", lambda _m, names: {n: {"ActiveState": "active", "SubState": "running"} for n in names}
    )
    assert units._systemctl(Module(), "start", ["nova-api", "nova-conductor"]) == []


class _Commands:
    """A stand-in for AnsibleModule.run_command: systemctl show answers ``exec_start``."""

    def __init__(self, exec_start: str) -> None:
        self.exec_start = exec_start

    def run_command(self, argv: list[str]):
        return 0, self.exec_start, ""


def test_the_error_of_a_service_that_logs_to_a_file_is_its_last_logged_error(units, tmp_path: Path) -> None:
    log = tmp_path / "nova-scheduler.log"
    log.write_text(
        "2026-12-05 10:58:31.900 8352 INFO nova.service starting\n"
        "2026-12-05 10:58:32.032 8352 ERROR nova Traceback (most recent call last):\n"
        "2026-12-05 10:58:32.032 8352 ERROR nova keystoneauth1.exceptions.discovery.DiscoveryFailure: "
        "Service Unavailable (HTTP 503)\n"
    )
    module = _Commands(f"{{ path=/usr/bin/nova-scheduler ; argv[]=/usr/bin/nova-scheduler --log-file={log} }}")
    assert units.last_logged_error(module, "nova-scheduler") == (
        f"nova keystoneauth1.exceptions.discovery.DiscoveryFailure: Service Unavailable (HTTP 503) (in {log})"
    )
    assert units.last_logged_error(_Commands(f"argv[]=x --log-file={tmp_path}/absent.log"), "x") == ""
