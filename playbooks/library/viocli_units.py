#!/usr/bin/python3
"""Ansible module: keep a node's systemd units as a service descriptor says, in one remote call.

A unit is *stale* when a file it reads, or the package that ships it, changed after the unit last
became active (or after its last reload, for units that reload): what runs is not what is on disk.
That is the restart rule, not "this run changed the file": a run that dies between rendering a file
and restarting its service leaves the unit stale, and the next run restarts it.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: viocli_units
short_description: Start, stop, restart or reload systemd units, restarting those whose files changed
options:
  units:
    description: >-
      The units: dicts with C(name), C(files) (paths it reads), C(packages) (that ship it), C(enabled)
      (start at boot; default true), C(reload) (reload instead of restart, hitless) and C(active)
      (default true; false keeps the unit stopped on this node, as an active/passive service's standby).
    type: list
    elements: dict
    required: true
  state:
    description: >-
      started (start what is not active, restart or reload what is stale), stopped, restarted (restart,
      or reload, every unit; start those not active), or checked (report only).
    type: str
    default: started
  restart_stale:
    description: With state=started, also restart (or reload) the stale units.
    type: bool
    default: true
  hold:
    description: >-
      Units whose stale restart is left to the rolling restart at the end of the run (the controllers'
      services, restarted one node at a time behind HAProxy); reported in C(held).
    type: list
    elements: str
    default: []
"""

RELOAD_MARKS = "/run/viocli/reloaded"
ERROR_WORDS = re.compile(r"error|cannot|can't|failed|fatal|alert|critical|denied|refused|unable|invalid", re.I)
SETTLE_SECONDS = 90  # how long a unit systemd keeps restarting gets to become active
# systemd's own lines about a unit: the unit's own error says more than these
SYSTEMD_LINES = ("Starting ", "Stopping ", "Started ", "Stopped ", "Failed to start", "Main process exited",
                 "Scheduled restart job", "Failed with result", "Consumed ", "Deactivated successfully")  # fmt: skip
LOG_FILE_ARGUMENT = re.compile(r"--log-file[= ](\S+)")
PROPERTIES = "Id,LoadState,ActiveState,SubState,UnitFileState,ActiveEnterTimestamp,NeedDaemonReload"


def _service(name: str) -> str:
    return name if "." in name else f"{name}.service"


def show(module: AnsibleModule, names: list[str]) -> dict[str, dict[str, str]]:
    """The properties of each unit (``systemctl show``), keyed by the names given."""
    rc, out, err = module.run_command(
        ["systemctl", "show", "--timestamp=us+utc", "-p", PROPERTIES, *(_service(n) for n in names)]
    )
    if rc != 0:
        module.fail_json(msg=f"systemctl show failed: {err.strip() or out.strip()}")
    blocks = [b for b in out.strip().split("\n\n") if b.strip()]
    result = {}
    for name, block in zip(names, blocks, strict=False):
        result[name] = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    return result


def parse_timestamp(value: str) -> float | None:
    """``Wed 2026-12-02 10:30:18.123456 UTC`` -> seconds since the epoch (None when empty)."""
    value = value.strip()
    if not value or value == "n/a":
        return None
    try:
        stamp = datetime.strptime(value, "%a %Y-%m-%d %H:%M:%S.%f UTC")
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC).timestamp()


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def package_mtime(package: str) -> float | None:
    """When dpkg last installed ``package`` (its file list is rewritten on every install or upgrade)."""
    times = [_mtime(f"/var/lib/dpkg/info/{package}{arch}.list") for arch in ("", ":amd64", ":arm64", ":all")]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def changed_since(unit: dict, since: float) -> list[str]:
    """The files and packages of ``unit`` modified after ``since``."""
    newer = [path for path in unit.get("files") or [] if (_mtime(path) or 0) > since]
    newer += [f"package {p}" for p in unit.get("packages") or [] if (package_mtime(p) or 0) > since]
    return newer


def needs_daemon_reload(units: dict[str, dict], props: dict[str, dict[str, str]]) -> bool:
    """systemd must read unit files again: it says so, or a unit or drop-in file the role manages
    is newer than the unit's start (systemd does not notice a drop-in directory made after its load)."""
    for name, unit in units.items():
        p = props.get(name, {})
        if p.get("NeedDaemonReload") == "yes":
            return True
        own = [path for path in unit.get("files") or [] if path.startswith(("/etc/systemd/", "/lib/systemd/"))]
        since = parse_timestamp(p.get("ActiveEnterTimestamp", "")) if p.get("ActiveState") == "active" else None
        if any((_mtime(path) or 0) > (since or 0) for path in own):
            return True
    return False


def running(props: dict[str, str]) -> bool:
    """The unit has processes or is getting them: active, or being started, reloaded or restarted."""
    return props.get("ActiveState") in ("active", "activating", "reloading") or props.get("SubState") == "auto-restart"


def reload_mark(name: str) -> str:
    return f"{RELOAD_MARKS}/{name}"


def running_since(name: str, props: dict[str, str]) -> float | None:
    """When the running unit last took its configuration: its activation, or a later reload."""
    active = parse_timestamp(props.get("ActiveEnterTimestamp", ""))
    if active is None:
        return None
    mark = _mtime(reload_mark(name))
    return max(active, mark) if mark is not None else active


def last_logged_error(module: AnsibleModule, name: str) -> str:
    """The last ERROR line of the unit's log file, without its timestamp prefix, and where it is.

    The OpenStack services write their tracebacks to a log file, never to the journal: the file named by
    ``--log-file`` in the unit's command, else Debian's /var/log/PROJECT/UNIT.log (nova-scheduler's
    init script adds the option itself)."""
    _, out, _ = module.run_command(["systemctl", "show", "-p", "ExecStart", "--value", _service(name)])
    found = LOG_FILE_ARGUMENT.search(out)
    path = found.group(1) if found else f"/var/log/{name.split('-')[0]}/{name}.log"
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            tail = log.readlines()[-400:]
    except OSError:
        return ""
    errors = [line.strip() for line in tail if " ERROR " in line]
    return f"{errors[-1].split(' ERROR ', 1)[1].strip()} (in {path})" if errors else ""


def first_error(module: AnsibleModule, name: str) -> str:
    """The first line of the unit's own error output in its last start (journal), else its state."""
    _, out, _ = module.run_command(
        ["journalctl", "-u", _service(name), "-n", "40", "--no-pager", "-o", "cat", "--since", "-10min"]
    )
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    own = [line for line in lines if not line.startswith(SYSTEMD_LINES)]
    errors = [line for line in own if ERROR_WORDS.search(line)]
    if errors:
        return errors[0]
    logged = last_logged_error(module, name)
    if logged:
        return logged
    systemd = [line for line in lines if line.startswith(("Failed to start", "Main process exited"))]
    if systemd:
        return systemd[-1]
    if own:
        return own[-1]
    _, out, _ = module.run_command(["systemctl", "is-active", _service(name)])
    return f"state {out.strip() or 'unknown'}, nothing in its journal"


def failure_hint(names: list[str]) -> str:
    """What the operator should do when these units failed."""
    if "mariadb" in names:
        return (
            "if every database node went down, Galera has no primary component to join: run "
            "`sudo viocli deployment start`, which recovers it from the most advanced node; otherwise see "
            "`journalctl -u mariadb` on the node"
        )
    units = " ".join(f"-u {n}" for n in names)
    return f"see `journalctl {units}` on the node, fix the cause, then run the same command again"


def _systemctl(module: AnsibleModule, verb: str, names: list[str]) -> list[tuple[str, str]]:
    """Run ``systemctl verb`` on each unit (all at once: systemd runs the jobs in parallel); the failures."""
    if not names:
        return []
    rc, _, _ = module.run_command(["systemctl", verb, *(_service(n) for n in names)])
    if rc == 0:
        return []
    if verb == "stop":
        failed = [n for n in names if module.run_command(["systemctl", "is-active", _service(n)])[0] == 0]
    else:
        failed = settle(module, names)
    # systemctl's failure may be one that systemd's own retry (Restart=on-failure) already made good:
    # only the units that did not end as asked failed.
    return [(name, first_error(module, name)) for name in failed]


def settle(module: AnsibleModule, names: list[str], seconds: float = SETTLE_SECONDS) -> list[str]:
    """The units that are not active once systemd's own retries are over (or ``seconds`` passed).

    A unit whose start failed while something it needs was restarting too (nova-scheduler while the
    Keystone it authenticates against restarts) is restarted by systemd (Restart=on-failure): it is
    judged when it is active, or when systemd has given up on it, not at its first failed attempt.
    """
    deadline = time.monotonic() + seconds
    while True:
        props = show(module, names)
        pending = [n for n in names if props[n].get("ActiveState") != "active"]
        # A unit still stopping is part of a restart under way (its own, or one systemd queued).
        retrying = [n for n in pending if running(props[n]) or props[n].get("ActiveState") == "deactivating"]
        if not retrying or time.monotonic() >= deadline:
            return pending
        time.sleep(2)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "dict", "required": True},
            "state": {"type": "str", "default": "started", "choices": ["started", "stopped", "restarted", "checked"]},
            "restart_stale": {"type": "bool", "default": True},
            "hold": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    units = {unit["name"]: unit for unit in module.params["units"]}
    state = module.params["state"]
    props = show(module, list(units))
    if needs_daemon_reload(units, props) and not module.check_mode:
        module.run_command(["systemctl", "daemon-reload"], check_rc=True)  # a unit file the role rendered
        props = show(module, list(units))
    missing = [name for name, p in props.items() if p.get("LoadState") == "not-found"]
    if missing:
        module.fail_json(msg=f"no such unit on this node: {', '.join(missing)} (is its package installed?)")

    result: dict = {"changed": False, "started": [], "stopped": [], "restarted": [], "reloaded": [],
                    "enabled": [], "disabled": [], "stale": {}, "active": [], "held": [],
                    "states": {}, "running": []}  # fmt: skip
    for name, unit in units.items():
        p = props[name]
        result["states"][name] = p.get("ActiveState", "unknown")
        if running(p):
            result["running"].append(name)
        if p.get("ActiveState") == "active":
            result["active"].append(name)
            since = running_since(name, p)
            newer = changed_since(unit, since) if since is not None else []
            if newer:
                result["stale"][name] = newer
        if state == "checked" or p.get("UnitFileState") in ("static", "masked", "generated", "indirect"):
            continue
        want = "enabled" if unit.get("enabled", True) else "disabled"
        if p.get("UnitFileState") != want:
            result[want].append(name)

    standby = [n for n, u in units.items() if u.get("active", True) is False]
    wanted = [n for n in units if n not in standby]
    if state == "started":
        result["started"] = [n for n in wanted if n not in result["active"]]
        if module.params["restart_stale"]:
            result["held"] = [n for n in result["stale"] if n in module.params["hold"]]
            due = [n for n in result["stale"] if n not in result["held"] and n in wanted]
            result["reloaded"] = [n for n in due if units[n].get("reload")]
            result["restarted"] = [n for n in due if not units[n].get("reload")]
    elif state == "restarted":
        up = [n for n in wanted if n in result["active"]]
        result["reloaded"] = [n for n in up if units[n].get("reload")]
        result["restarted"] = [n for n in up if not units[n].get("reload")]
        result["started"] = [n for n in wanted if n not in result["active"]]
    if state == "stopped":
        result["stopped"] = list(result["running"])  # also a unit systemd is starting or restarting
    elif state != "checked":
        result["stopped"] = [n for n in standby if n in result["running"]]

    actions = ("enabled", "disabled", "started", "restarted", "reloaded", "stopped")
    result["changed"] = any(result[key] for key in actions)
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    verbs = {"enabled": "enable", "disabled": "disable", "stopped": "stop", "started": "start",
             "restarted": "restart", "reloaded": "reload"}  # fmt: skip
    failures: list[tuple[str, str]] = []
    for key in actions:
        failures += _systemctl(module, verbs[key], result[key])
        if key == "reloaded" and result[key]:
            os.makedirs(RELOAD_MARKS, exist_ok=True)
            for name in result[key]:
                with open(reload_mark(name), "w", encoding="utf-8"):
                    pass
    if failures:
        result["failures"] = [{"unit": n, "error": e} for n, e in failures]
        result["viocli_hint"] = failure_hint([n for n, _ in failures])
        module.fail_json(msg="; ".join(f"{n}: {e}" for n, e in failures), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
