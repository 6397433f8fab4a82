"""One lab node: what a powered-on VM with a guest customization becomes.

A node is a network namespace (one veth per NIC on the bridge of its port group) and a container
booted by ``systemd-nspawn --boot`` on an overlay of the template root filesystem whose upper layer
is the node's disk: systemd runs as its PID 1 and boots it as a VM's guest would (sysctl.d, journald,
the units enabled at boot, sshd). Power-off kills it and keeps the disk; power-on boots it again on
the same disk; destroy removes both; a snapshot copies the disk and a revert restores it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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

CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


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
        self.journal.record("cgroup", key=self.key)
        launcher = spawn(_boot_command(self.key, spec, self.merged), self.dir / "console.log", env=_nspawn_env())
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

    def stop(self, *, graceful: bool = False) -> None:
        """Power off: end every process of the node, remove its namespace and NICs, keep its disk.

        A vSphere power-off is a hard one: the node's systemd is killed, and the kernel ends every
        process of its PID namespace with it (nothing is stopped cleanly, as when a VM loses power).
        ``graceful`` is a guest shutdown instead: systemd stops its units in order, then halts.
        """
        record = self.runtime()
        if record:
            init = Daemon(record["pid"], record["started"])
            if graceful:
                stop(init, timeout=90, sig=signal.SIGRTMIN + 4)  # systemd: poweroff.target
            else:
                stop(init, timeout=0, sig=signal.SIGKILL)
            self.journal.forget("process", pid=record["pid"])
            reap(record.get("launcher"))
        remove_cgroups(self.key)
        self.journal.forget("cgroup", key=self.key)
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


def _nspawn_env() -> dict[str, str]:
    # /proc/sys is read-only in a container; "network" makes the namespaced net.* keys writable, so
    # the node's systemd-sysctl applies /etc/sysctl.d at boot (ip_nonlocal_bind for the VIPs).
    return {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}


def node_cgroups(key: str) -> list[Path]:
    """The cgroups of one node, one per hierarchy systemd uses (named ``systemd`` and the unified one)."""
    roots = [root for root in CGROUP_ROOTS if os.path.ismount(root)]
    if not roots and (Path("/sys/fs/cgroup") / "cgroup.controllers").exists():
        roots = [Path("/sys/fs/cgroup")]  # a pure cgroup v2 host
    return [root / "violab" / key for root in roots]


def remove_cgroups(key: str) -> None:
    """Remove a stopped node's cgroups (deepest first: a cgroup goes only once it has no children)."""
    for top in node_cgroups(key):
        if not top.is_dir():
            continue
        for directory in sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
        with contextlib.suppress(OSError):
            top.parent.rmdir()  # the lab's own cgroup, once its last node is gone


def _boot_command(key: str, spec: NodeSpec, root: Path) -> list[str]:
    """Boot the node's systemd in its own cgroups and network namespace (``systemd-nspawn --boot``).

    There is no systemd on the host to register a machine or a scope with, so nspawn keeps the
    caller's cgroup; the shell first moves into cgroups of the node's own, or every node's systemd
    would share one cgroup tree (and stop each other's services).
    """
    enter = (
        'for d in "$@"; do case "$d" in --) shift; break;; esac; '
        'mkdir -p "$d" && echo $$ > "$d/cgroup.procs" || exit 1; shift; done; exec "$@"'
    )
    return [
        "sh", "-c", enter, "violab-boot", *(str(path) for path in node_cgroups(key)), "--",
        "systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
        f"--directory={root}", f"--machine={spec.hostname}", f"--hostname={spec.hostname}",
        f"--network-namespace-path=/run/netns/{spec.netns}",
        # keepalived adds the VIPs, as a VM's root may. Not CAP_SYS_TIME: nodes share the host's clock.
        "--capability=CAP_NET_ADMIN",
        "--console=pipe", "--link-journal=no", "--resolv-conf=off", "--timezone=off",
    ]  # fmt: skip


def _node_init(launcher: Daemon) -> Daemon:
    """The node's systemd as seen from the host: the child of ``systemd-nspawn`` that runs it.

    A hard power-off kills it (the kernel then ends the node's whole PID namespace).
    """
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pids = children.read_text().split()
        except OSError:
            pids = []
        for pid in pids:
            # nspawn forks a short-lived helper first; the init is the child that runs systemd.
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            started = start_time(int(pid))
            if command.endswith(b"systemd") and started is not None:
                return Daemon(int(pid), started)
        if not launcher.alive():
            break
        time.sleep(0.01)  # process creation has no event to wait on; this loop ends within ms
    raise OperationFailed(f"lab: the node's systemd did not start (launcher pid {launcher.pid}); see console.log")


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
