"""One lab node: what a powered-on VM with a guest customization becomes.

A node is a network namespace (one veth per NIC on the bridge of its port group), its own UTS, PID
and mount namespaces, and a chroot into an overlay of the template root filesystem whose upper
layer is the node's disk. Power-off stops its processes and keeps the disk; power-on starts it
again on the same disk; destroy removes both; a snapshot copies the disk and a revert restores it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from viocli.errors import OperationFailed
from viocli.lab import net
from viocli.lab.journal import Journal
from viocli.lab.layout import MGMT, LabNetwork, LabPaths
from viocli.lab.system import Daemon, reap, run, spawn, start_time, stop
from viocli.sshkeys import generate_ed25519

INIT_PATH = "usr/local/sbin/violab-init"


@dataclass(frozen=True)
class Nic:
    """One NIC as the guest customization set it."""

    network: LabNetwork
    address: IPv4Address


@dataclass(frozen=True)
class NodeSpec:
    """What the simulator says a VM should be once powered on."""

    key: str  # the VM's managed object id: stable for the VM's whole life
    hostname: str
    nics: tuple[Nic, ...]
    dns: tuple[str, ...] = field(default=())

    @property
    def netns(self) -> str:
        return f"violab-{self.key}"

    @property
    def mgmt_ip(self) -> IPv4Address | None:
        return next((nic.address for nic in self.nics if nic.network == MGMT), None)


class LabNode:
    """Disk, runtime and snapshots of one node under ``<lab>/nodes/<key>``."""

    def __init__(self, paths: LabPaths, key: str, journal: Journal):
        self.key = key
        self.dir = paths.node(key)
        self.journal = journal

    upper = property(lambda self: self.dir / "disk")
    work = property(lambda self: self.dir / "work")
    merged = property(lambda self: self.dir / "root")
    runtime_file = property(lambda self: self.dir / "runtime.json")
    spec_file = property(lambda self: self.dir / "spec.json")
    host_key_pub = property(lambda self: self.dir / "ssh_host_ed25519_key.pub")

    def snapshot_dir(self, snapshot: str) -> Path:
        return self.dir / "snapshots" / snapshot

    # --- runtime record ------------------------------------------------------------------------
    def runtime(self) -> dict | None:
        try:
            return json.loads(self.runtime_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def spec(self) -> dict | None:
        """The node's identity as last started (hostname, NICs), kept while it is off."""
        try:
            return json.loads(self.spec_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        record = self.runtime()
        return bool(record) and Daemon(record["pid"], record["started"]).alive()

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, spec: NodeSpec, template: Path, oms_public_key: str) -> Daemon:
        """Boot the node from its disk (created on first start)."""
        if self.running():
            return self._daemon()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for directory in (self.upper, self.work, self.merged):
            directory.mkdir(exist_ok=True)
        self.journal.record("mount", path=str(self.merged))
        if not os.path.ismount(self.merged):
            run(
                [
                    "mount",
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    f"lowerdir={template},upperdir={self.upper},workdir={self.work}",
                    str(self.merged),
                ]
            )
        self._prepare_root(spec, oms_public_key)
        self.journal.record("netns", name=spec.netns)
        net.create_netns(spec.netns)
        for index, nic in enumerate(spec.nics):
            host_if = net.veth_name(self.key, index)
            self.journal.record("link", name=host_if)
            net.attach_nic(spec.netns, host_if, index, nic.network.bridge, nic.address, nic.network.prefix)
        if any(nic.network == MGMT for nic in spec.nics):
            net.set_default_route(spec.netns, MGMT.host_ip)
        command = [
            "ip", "netns", "exec", spec.netns,
            "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child=SIGTERM", "--propagation", "private",
            "sh", "-c", 'mount --rbind /dev "$0/dev" && exec chroot "$0" /usr/bin/python3 /' + INIT_PATH + ' "$1"',
            str(self.merged), spec.hostname,
        ]  # fmt: skip
        launcher = spawn(command, self.dir / "console.log")
        daemon = _node_init(launcher)
        self.journal.record("process", pid=daemon.pid, started=daemon.started, what=f"node {spec.hostname}")
        self.spec_file.write_text(json.dumps(_spec_dict(spec)))
        self.runtime_file.write_text(
            json.dumps({"pid": daemon.pid, "started": daemon.started, "launcher": launcher.pid})
        )
        return daemon

    def _daemon(self) -> Daemon:
        record = self.runtime() or {}
        return Daemon(record["pid"], record["started"])

    def _prepare_root(self, spec: NodeSpec, oms_public_key: str) -> None:
        root = self.merged
        init = root / INIT_PATH
        init.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).with_name("node_init.py"), init)
        init.chmod(0o755)
        (root / "etc" / "hostname").write_text(spec.hostname + "\n")
        hosts = "127.0.0.1\tlocalhost\n"
        if spec.mgmt_ip:
            hosts += f"{spec.mgmt_ip}\t{spec.hostname}\n"
        hosts_file = root / "etc" / "hosts"
        if not hosts_file.exists() or "viocli" not in hosts_file.read_text():
            hosts_file.write_text(hosts)  # the deploy playbooks later manage it (with their header)
        if spec.dns:
            (root / "etc" / "resolv.conf").unlink(missing_ok=True)
            (root / "etc" / "resolv.conf").write_text("".join(f"nameserver {d}\n" for d in spec.dns))
        ssh_dir = root / "root" / ".ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        authorized = ssh_dir / "authorized_keys"
        lines = authorized.read_text().splitlines() if authorized.exists() else []
        if oms_public_key not in lines:
            authorized.write_text("\n".join([*lines, oms_public_key]) + "\n")
        authorized.chmod(0o600)
        host_key = root / "etc" / "ssh" / "ssh_host_ed25519_key"
        if not host_key.exists():
            generate_ed25519(host_key, f"root@{spec.hostname}")
        shutil.copyfile(host_key.with_name(host_key.name + ".pub"), self.host_key_pub)

    def stop(self) -> None:
        """Power off: stop every process of the node, remove its namespace and NICs, keep its disk."""
        record = self.runtime()
        if record:
            stop(Daemon(record["pid"], record["started"]), timeout=30)
            self.journal.forget("process", pid=record["pid"])
            reap(record.get("launcher"))
        spec = self.spec() or {}
        netns = spec.get("netns") or f"violab-{self.key}"
        for index in range(len(spec.get("nics", [])) or 4):
            name = net.veth_name(self.key, index)
            net.delete_link(name)
            self.journal.forget("link", name=name)
        net.delete_netns(netns)
        self.journal.forget("netns", name=netns)
        if os.path.ismount(self.merged):
            run(["umount", str(self.merged)])
        self.journal.forget("mount", path=str(self.merged))
        self.runtime_file.unlink(missing_ok=True)

    def destroy(self) -> None:
        """Delete the VM: stop it and remove its disk and snapshots."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def snapshot(self, snapshot: str) -> None:
        """Copy the node's disk as it is now."""
        target = self.snapshot_dir(snapshot)
        if target.exists():
            return
        os.sync()
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _copy_tree(self.upper, tmp / "disk")
        tmp.rename(target)

    def revert(self, snapshot: str, spec: NodeSpec | None, template: Path, oms_public_key: str) -> None:
        """Put the snapshot's disk back; a node that was running runs again on it."""
        source = self.snapshot_dir(snapshot) / "disk"
        if not source.is_dir():
            raise OperationFailed(f"lab: node {self.key} has no copy of snapshot {snapshot}")
        was_running = self.running()
        self.stop()
        shutil.rmtree(self.upper)
        shutil.rmtree(self.work, ignore_errors=True)
        _copy_tree(source, self.upper)
        if was_running and spec is not None:
            self.start(spec, template, oms_public_key)


def _node_init(launcher: Daemon) -> Daemon:
    """The node's init as seen from the host: the child ``unshare --fork`` makes (pid 1 inside).

    Signals go to it, not to ``unshare``, so that stopping a node waits for its clean shutdown.
    """
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pids = children.read_text().split()
        except OSError:
            pids = []
        if pids:
            # The launcher is `ip netns exec` exec'ing unshare; its only child is the node's init.
            init_pid = int(pids[0])
            started = start_time(init_pid)
            if started is not None:
                return Daemon(init_pid, started)
        if not launcher.alive():
            break
        time.sleep(0.01)  # process creation has no event to wait on; this loop ends within ms
    raise OperationFailed(f"lab: the node's init did not start (launcher pid {launcher.pid}); see console.log")


def _copy_tree(source: Path, target: Path) -> None:
    # cp keeps what overlayfs needs in its upper layer (whiteouts are device files, opaque dirs xattrs).
    result = subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        raise OperationFailed(f"lab: copying {source} failed: {result.stderr.strip()}")


def _spec_dict(spec: NodeSpec) -> dict:
    data = asdict(spec)
    data["nics"] = [{"network": n.network.name, "address": str(n.address)} for n in spec.nics]
    data["netns"] = spec.netns
    return data
