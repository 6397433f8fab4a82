"""``viocli lab up|down|status``: start, remove and describe the lab.

``up`` is idempotent: what runs stays, what is missing is started. Every resource is recorded in
the lab's journal as it is created, and ``down`` undoes exactly those records, newest first, then
removes the lab directory. Caches (the template root filesystem, the simulator build) are kept so
the next ``up`` is fast.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viocli.atomic import write_atomic
from viocli.errors import Refused
from viocli.lab import net
from viocli.lab.journal import Journal
from viocli.lab.layout import API, MGMT, NETWORKS, NFS_PORT, NFS_PSEUDO, VCSIM_PORT, LabPaths
from viocli.lab.node import LabNode, node_cgroups, remove_cgroups
from viocli.lab.system import Daemon, run, spawn, start_time, stop
from viocli.settings import Settings
from viocli.sshkeys import oms_keypair

DEFAULT_CACHE = Path("/var/cache/viocli")


def cache_dir() -> Path:
    """Where builds are cached between labs (``$VIOCLI_CACHE_DIR`` overrides)."""
    return Path(os.environ.get("VIOCLI_CACHE_DIR", DEFAULT_CACHE))


def lab_paths(settings: Settings) -> LabPaths:
    return LabPaths(settings.state_dir / "lab")


def check_kernel() -> None:
    """Refuse clearly where the kernel cannot run the lab."""
    if os.geteuid() != 0:
        raise Refused("the lab needs root: run it with sudo")
    filesystems = Path("/proc/filesystems").read_text()
    if "overlay" not in filesystems:
        raise Refused("this kernel has no overlayfs; the lab's nodes need it (modprobe overlay, or another machine)")
    if run(["unshare", "--net", "--uts", "--pid", "--fork", "--mount", "true"], check=False).returncode != 0:
        raise Refused("this kernel (or container) does not allow network, UTS, PID and mount namespaces")


@dataclass
class LabState:
    """What ``up`` started, kept in ``lab.json``."""

    data: dict[str, Any]

    @classmethod
    def load(cls, paths: LabPaths) -> LabState:
        try:
            return cls(json.loads(paths.status_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return cls({})

    def save(self, paths: LabPaths) -> None:
        paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(paths.status_file, json.dumps(self.data, indent=2, sort_keys=True).encode("utf-8"), 0o600)

    def daemon(self, name: str) -> Daemon | None:
        entry = self.data.get(name)
        return Daemon(entry["pid"], entry["started"]) if entry else None

    def running(self, name: str) -> bool:
        daemon = self.daemon(name)
        return daemon is not None and daemon.alive()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def up(settings: Settings) -> LabState:
    """Bring the lab up (or complete it); returns what runs."""
    from viocli.lab import nfs_server, simulator, template

    check_kernel()
    paths = lab_paths(settings)
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    journal = Journal(paths.journal)
    state = LabState.load(paths)
    net.check_range_free(journal)
    for network in NETWORKS:
        if net.ensure_bridge(network, journal):
            _say(f"bridge {network.bridge}: {network.host_ip}/{network.prefix} ({network.name} network)")
    key_path, _public_key = oms_keypair(settings.state_dir)

    # $VIOCLI_LAB_TEMPLATE: a root filesystem of your own instead of the built one (development).
    override = os.environ.get("VIOCLI_LAB_TEMPLATE")
    template_root = Path(override) if override else template.build_template(cache_dir() / "templates", log=_say)
    state.data["template"] = str(template_root)

    if not state.running("vcsim"):
        binary = simulator.build(cache_dir())
        simulator.generate_tls(paths.root, str(MGMT.host_ip))
        simulator.ensure_credentials(paths.root)
        # 443 too: glance_store's VMware store cannot be told another port (a real vCenter is on 443)
        handle = simulator.start(binary, paths.root, str(MGMT.host_ip), VCSIM_PORT, also_ports=(443,))
        started = start_time(handle.pid)
        journal.record("process", pid=handle.pid, started=started, what="vcsim")
        state.data["vcsim"] = {
            "pid": handle.pid, "started": started, "url": handle.url, "ca_file": str(handle.ca_file),
            "username": handle.username, "credentials": str(handle.password_file),
        }  # fmt: skip
        state.save(paths)
        _say(f"vCenter simulator: {handle.url} (pid {handle.pid})")

    if not state.running("nfs"):
        paths.nfs_export.mkdir(parents=True, exist_ok=True)
        handle = nfs_server.start(paths.root / "nfs", paths.nfs_export, str(MGMT.host_ip), NFS_PORT)
        started = start_time(handle.pid)
        journal.record("process", pid=handle.pid, started=started, what="nfs-ganesha")
        state.data["nfs"] = {"pid": handle.pid, "started": started, "export": f"{MGMT.host_ip}:{NFS_PSEUDO}"}
        state.save(paths)
        _say(f"NFS server: {MGMT.host_ip}:{NFS_PSEUDO} (pid {handle.pid})")

    if not state.running("watcher"):
        vcsim = state.data["vcsim"]
        daemon = spawn(
            [
                sys.executable, "-m", "viocli.lab.watcher", "--lab-dir", str(paths.root),
                "--host", str(MGMT.host_ip), "--port", str(VCSIM_PORT), "--credentials", vcsim["credentials"],
                "--ca-file", vcsim["ca_file"], "--template", str(template_root),
                "--oms-public-key", str(key_path) + ".pub",
            ],
            paths.watcher_log,
        )  # fmt: skip
        journal.record("process", pid=daemon.pid, started=daemon.started, what="node watcher")
        state.data["watcher"] = {"pid": daemon.pid, "started": daemon.started}
        state.save(paths)
        _say(f"node watcher: pid {daemon.pid} (log {paths.watcher_log})")
    state.save(paths)
    return state


def down(settings: Settings) -> list[str]:
    """Remove everything the lab created, newest first; returns what was removed."""
    check_kernel()
    paths = lab_paths(settings)
    if not paths.root.exists():
        return []
    journal = Journal(paths.journal)
    state = LabState.load(paths)
    removed: list[str] = []
    watcher = state.daemon("watcher")
    if watcher is not None and watcher.alive():
        stop(watcher)  # first, so it does not react to what follows
        removed.append(f"process {watcher.pid} (node watcher)")
    if paths.nodes.is_dir():
        for node_dir in sorted(paths.nodes.iterdir()):
            LabNode(paths, node_dir.name, journal).stop()
            removed.append(f"node {node_dir.name}")
    for record in reversed(journal.records()):
        removed.extend(_undo(record))
    if paths.root.exists():
        shutil.rmtree(paths.root)
        removed.append(f"directory {paths.root}")
    return removed


def _undo(record: dict[str, Any]) -> list[str]:
    kind = record["kind"]
    if kind == "process":
        daemon = Daemon(record["pid"], record["started"])
        if daemon.alive():
            stop(daemon)
            return [f"process {daemon.pid} ({record.get('what', '?')})"]
    elif kind == "mount" and os.path.ismount(record["path"]):
        run(["umount", "-l", record["path"]])
        return [f"mount {record['path']}"]
    elif kind == "netns" and net.netns_exists(record["name"]):
        net.delete_netns(record["name"])
        return [f"namespace {record['name']}"]
    elif kind == "cgroup" and any(path.exists() for path in node_cgroups(record["key"])):
        remove_cgroups(record["key"])
        return [f"cgroups of node {record['key']}"]
    elif kind in ("link", "bridge") and net.link_exists(record["name"]):
        net.delete_link(record["name"])
        return [f"{kind} {record['name']}"]
    return []


def status(settings: Settings) -> dict[str, Any]:
    """The lab as it is now: services, bridges, nodes with state and IP."""
    paths = lab_paths(settings)
    state = LabState.load(paths)
    report: dict[str, Any] = {"lab_dir": str(paths.root), "up": paths.status_file.exists()}
    for name in ("vcsim", "nfs", "watcher"):
        entry = dict(state.data.get(name) or {})
        entry["running"] = state.running(name)
        report[name] = entry
    report["bridges"] = [
        {"name": n.bridge, "network": n.name, "address": f"{n.host_ip}/{n.prefix}", "up": net.link_exists(n.bridge)}
        for n in (MGMT, API)
    ]
    nodes = []
    if paths.nodes.is_dir():
        journal = Journal(paths.journal)
        for node_dir in sorted(paths.nodes.iterdir()):
            node = LabNode(paths, node_dir.name, journal)
            record = node.spec() or {}
            nodes.append(
                {
                    "vm": node_dir.name,
                    "hostname": record.get("hostname", "-"),
                    "state": "running" if node.running() else "stopped",
                    "ips": [nic["address"] for nic in record.get("nics", [])],
                }
            )
    report["nodes"] = nodes
    return report
