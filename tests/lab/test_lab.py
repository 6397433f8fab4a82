"""The lab end to end, as an operator and as viocli's provisioning will use it.

``viocli lab up`` (twice: idempotent), then through pyvmomi against the simulator: 8 clones with
guest customization in parallel, each answering SSH (host key checked) with its own hostname and
IPs; power off and on keeps the disk; snapshot, change, revert brings the file back; destroy removes
the node. NFS through viocli's userspace client. ``viocli lab down`` leaves nothing behind.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest

from tests.lab.oms import oms_env, run_viocli
from viocli.lab.layout import API, MGMT
from viocli.vsphere.clone import NicPlan, clone_spec
from viocli.vsphere.connection import connect
from viocli.vsphere.objects import find
from viocli.vsphere.tasks import wait_for_tasks

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NODE_BOOT_TIMEOUT = 60


@dataclass
class Lab:
    env: dict[str, str]
    state_dir: Path
    info: dict[str, Any]
    si: Any

    @property
    def lab_dir(self) -> Path:
        return self.state_dir / "lab"

    def viocli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return run_viocli(self.env, *args, timeout=timeout)


def _leftovers(state_dir: Path) -> dict[str, list[str]]:
    netns = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout or "[]"
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout)
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    return {
        "namespaces": [n["name"] for n in json.loads(netns) if n["name"].startswith("violab-")],
        "links": [link["ifname"] for link in links if re.match(r"violab-|vl[0-9a-f]{8}n\d+", link["ifname"])],
        "mounts": [m for m in mounts if str(state_dir) in m],
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("oms")
    lab = Lab(oms_env(root), root / "state", {}, None)
    started = time.monotonic()
    up = lab.viocli("lab", "up", timeout=3600)
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"lab up: {time.monotonic() - started:.1f}s\n{up.stdout}")
    lab.info = json.loads((lab.lab_dir / "lab.json").read_text())
    user, password = Path(lab.info["vcsim"]["credentials"]).read_text().splitlines()[:2]
    lab.si = connect(str(MGMT.host_ip), 8989, user, password, ca_file=Path(lab.info["vcsim"]["ca_file"]))
    yield lab
    if (lab.lab_dir / "lab.json").exists():  # a test failed before test_down ran
        lab.viocli("lab", "down")


def _vim(lab: Lab):
    from pyVmomi import vim

    datacenter = find(lab.si, vim.Datacenter, "vio-dc")
    cluster = find(lab.si, vim.ClusterComputeResource, "vio-mgmt")
    return (
        vim,
        datacenter,
        cluster,
        find(lab.si, vim.VirtualMachine, "vio-template"),
        find(lab.si, vim.Network, MGMT.portgroup),
        find(lab.si, vim.Network, API.portgroup),
    )


def _clone(lab: Lab, names_ips: list[tuple[str, str, str]]) -> list[Any]:
    """Clone all at once, wait for all the clone tasks together, power all on together."""
    vim, datacenter, cluster, template, mgmt_pg, api_pg = _vim(lab)
    datastores = [find(lab.si, vim.Datastore, f"vio-ds{i}") for i in (1, 2, 3)]
    tasks = []
    for index, (name, mgmt_ip, api_ip) in enumerate(names_ips):
        spec = clone_spec(
            template,
            hostname=name,
            nics=[
                NicPlan(mgmt_pg, mgmt_ip, "255.255.255.0", str(MGMT.host_ip)),
                NicPlan(api_pg, api_ip, "255.255.255.0"),
            ],
            dns=[str(MGMT.host_ip)],
            resource_pool=cluster.resourcePool,
            datastore=datastores[index % 3],
        )
        tasks.append(template.CloneVM_Task(folder=datacenter.vmFolder, name=f"lab-test-{name}", spec=spec))
    vms = wait_for_tasks(lab.si, tasks)
    wait_for_tasks(lab.si, [vm.PowerOnVM_Task() for vm in vms])
    return vms


def _ssh(lab: Lab, vm: Any, ip: str, command: str, *, timeout: float = NODE_BOOT_TIMEOUT) -> str:
    """Run ``command`` on the node over SSH, checking its host key; waits for the node to boot."""
    host_key_file = lab.lab_dir / "nodes" / vm._moId / "ssh_host_ed25519_key.pub"
    key = paramiko.Ed25519Key.from_private_key_file(str(lab.state_dir / "ssh" / "id_ed25519"))
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            kind, data = host_key_file.read_text().split()[:2]
            client.get_host_keys().add(ip, kind, paramiko.Ed25519Key(data=base64.b64decode(data)))
            client.connect(ip, username="root", pkey=key, timeout=5, allow_agent=False, look_for_keys=False)
            try:
                _, stdout, _ = client.exec_command(command, timeout=30)
                return stdout.read().decode()
            finally:
                client.close()
        except (OSError, paramiko.SSHException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_lab_up_is_idempotent(lab: Lab) -> None:
    again = lab.viocli("lab", "up")
    assert again.returncode == 0, again.stderr
    assert json.loads((lab.lab_dir / "lab.json").read_text())["vcsim"]["pid"] == lab.info["vcsim"]["pid"]
    status = lab.viocli("lab", "status", "--format", "json")
    report = json.loads(status.stdout)
    assert report["vcsim"]["running"] and report["nfs"]["running"] and report["watcher"]["running"]
    assert report["nfs"]["export"] == f"{MGMT.host_ip}:/vio_backup"
    assert all(bridge["up"] for bridge in report["bridges"])


def test_eight_parallel_clones_answer_ssh_with_their_own_identity(lab: Lab) -> None:
    names = [(f"node{i:02d}", f"10.203.0.{200 + i}", f"10.203.1.{200 + i}") for i in range(8)]
    started = time.monotonic()
    vms = _clone(lab, names)
    for vm, (name, mgmt_ip, api_ip) in zip(vms, names, strict=True):
        out = _ssh(lab, vm, mgmt_ip, "hostname; ip -4 -o addr show")
        assert out.splitlines()[0] == name
        assert f"{mgmt_ip}/24" in out and f"{api_ip}/24" in out
    print(f"8 clones powered on and answering SSH in {time.monotonic() - started:.1f}s")
    table = lab.viocli("lab", "status").stdout
    for name, mgmt_ip, _ in names:
        assert name in table and mgmt_ip in table
    wait_for_tasks(lab.si, [vm.PowerOffVM_Task() for vm in vms])
    wait_for_tasks(lab.si, [vm.Destroy_Task() for vm in vms])


def test_power_off_stops_the_node_and_power_on_keeps_its_disk(lab: Lab) -> None:
    (vm,) = _clone(lab, [("power01", "10.203.0.120", "10.203.1.120")])
    _ssh(lab, vm, "10.203.0.120", "echo kept > /root/marker")
    wait_for_tasks(lab.si, [vm.PowerOffVM_Task()])
    runtime = lab.lab_dir / "nodes" / vm._moId / "runtime.json"
    deadline = time.monotonic() + 30
    while runtime.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not runtime.exists(), "the node still runs after power-off"
    with pytest.raises((OSError, paramiko.SSHException)):
        _ssh(lab, vm, "10.203.0.120", "true", timeout=2)
    wait_for_tasks(lab.si, [vm.PowerOnVM_Task()])
    assert _ssh(lab, vm, "10.203.0.120", "cat /root/marker").strip() == "kept"
    wait_for_tasks(lab.si, [vm.PowerOffVM_Task()])
    wait_for_tasks(lab.si, [vm.Destroy_Task()])


def test_snapshot_and_revert_act_on_the_disk(lab: Lab) -> None:
    (vm,) = _clone(lab, [("snap01", "10.203.0.121", "10.203.1.121")])
    _ssh(lab, vm, "10.203.0.121", "echo before > /root/state")
    wait_for_tasks(lab.si, [vm.CreateSnapshot_Task(name="pre-change", memory=False, quiesce=False)])
    applied = lab.lab_dir / "nodes" / vm._moId / "applied.log"
    _wait_for_line(applied, "snapshot ")
    _ssh(lab, vm, "10.203.0.121", "echo after > /root/state")
    snapshot = vm.snapshot.rootSnapshotList[0].snapshot
    wait_for_tasks(lab.si, [snapshot.RevertToSnapshot_Task()])
    _wait_for_line(applied, "revert ")
    assert _ssh(lab, vm, "10.203.0.121", "cat /root/state").strip() == "before"
    wait_for_tasks(lab.si, [vm.PowerOffVM_Task()])
    wait_for_tasks(lab.si, [vm.Destroy_Task()])


def test_destroy_removes_the_node_and_its_disk(lab: Lab) -> None:
    (vm,) = _clone(lab, [("gone01", "10.203.0.122", "10.203.1.122")])
    _ssh(lab, vm, "10.203.0.122", "true")
    node_dir = lab.lab_dir / "nodes" / vm._moId
    assert node_dir.is_dir()
    wait_for_tasks(lab.si, [vm.PowerOffVM_Task()])
    wait_for_tasks(lab.si, [vm.Destroy_Task()])
    deadline = time.monotonic() + 30
    while node_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not node_dir.exists()
    assert f"violab-{vm._moId}" not in _leftovers(lab.state_dir)["namespaces"]


def test_nfs_export_write_read_list_delete(lab: Lab) -> None:
    from viocli.nfs.client import NfsVolume

    payload = os.urandom(3 * 1024 * 1024)
    with NfsVolume.parse(lab.info["nfs"]["export"]) as volume:
        assert volume.write_stream("lab-check.bin", io.BytesIO(payload)) == len(payload)
        assert "lab-check.bin" in volume.listdir()
        sink = io.BytesIO()
        volume.read_stream("lab-check.bin", sink)
        assert sink.getvalue() == payload
        volume.remove("lab-check.bin")
        assert "lab-check.bin" not in volume.listdir()


def test_lab_inventories_validate_once_the_lab_is_up(lab: Lab) -> None:
    shutil.copy(Path(__file__).resolve().parents[2] / "inventory" / "custom-lab.yml", lab.state_dir.parent)
    for name in ("lab-tiny.yml", "lab-ha.yml"):
        path = Path(__file__).resolve().parents[2] / "inventory" / name
        text = path.read_text().replace("/var/lib/viocli/lab/", f"{lab.lab_dir}/")
        copy = lab.state_dir.parent / name
        copy.write_text(text)
        result = lab.viocli("inventory", "validate", "-i", str(copy))
        assert result.returncode == 0, result.stderr


def test_down_leaves_nothing(lab: Lab) -> None:
    pids = [lab.info[name]["pid"] for name in ("vcsim", "nfs", "watcher")]
    (vm,) = _clone(lab, [("left01", "10.203.0.123", "10.203.1.123")])  # a node still running at down
    _ssh(lab, vm, "10.203.0.123", "true")
    node_pid = json.loads((lab.lab_dir / "nodes" / vm._moId / "runtime.json").read_text())["pid"]
    down = lab.viocli("lab", "down")
    assert down.returncode == 0, down.stderr
    assert not lab.lab_dir.exists()
    assert _leftovers(lab.state_dir) == {"namespaces": [], "links": [], "mounts": []}
    for pid in [*pids, node_pid]:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert lab.viocli("lab", "down").stdout.strip() == "no lab was running"


def _wait_for_line(path: Path, prefix: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and any(line.startswith(prefix) for line in path.read_text().splitlines()):
            return
        time.sleep(0.2)
    raise AssertionError(f"the watcher did not apply '{prefix.strip()}' (see {path})")
