"""Helpers shared by the lab tests: an OMS of their own (state, log, config under a tmp dir)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

# The lab HA deployment's addresses (inventory/lab-ha.yml).
DATABASES = ("10.203.0.102", "10.203.0.103", "10.203.0.104")  # database01..03
LOADBALANCERS = ("10.203.0.100", "10.203.0.101")
CONTROLLERS = ("10.203.0.105", "10.203.0.106")
INTERNAL_VIP, EXTERNAL_VIP = "10.203.0.90", "10.203.1.90"
CATALOG_TYPES = {"identity", "image", "placement", "compute", "network", "volumev3", "orchestration", "cloudformation"}


def oms_env(root: Path) -> dict[str, str]:
    """The environment that points viocli's state dir, log file and config under ``root``."""
    return {
        "VIOCLI_STATE_DIR": str(root / "state"),
        "VIOCLI_LOG_FILE": str(root / "log" / "viocli.log"),
        "VIOCLI_CONFIG": str(root / "etc" / "viocli.conf"),
    }


def run_viocli(env: dict[str, str], *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run the real CLI as an operator would, with ``env`` on top of this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "viocli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ssh_command(env: dict[str, str], deployment: str, address: str) -> list[str]:
    """ssh to a node of ``deployment`` as viocli does: its key, its known_hosts, host key checked."""
    state = Path(env["VIOCLI_STATE_DIR"])
    return [
        "ssh", "-i", str(state / "ssh" / "id_ed25519"),
        "-o", f"UserKnownHostsFile={state / 'deployments' / deployment / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{address}",
    ]  # fmt: skip


def on_node(env: dict[str, str], deployment: str, address: str, command: str) -> str:
    """Run ``command`` on a node and return its output (fails the test if the command fails)."""
    result = subprocess.run(
        [*ssh_command(env, deployment, address), command], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{address}: {command}: {result.stderr}"
    return result.stdout


def on_node_run(
    env: dict[str, str], deployment: str, address: str, command: str, stdin: str = ""
) -> subprocess.CompletedProcess:
    """Run ``command`` on a node with ``stdin`` (how a test hands a node a secret); its exit code is the caller's."""
    return subprocess.run(
        [*ssh_command(env, deployment, address), command], input=stdin, capture_output=True, text=True, timeout=120
    )


# pid, parent pid, start time in clock ticks since boot, command line, of every process. The start time
# comes from /proc/PID/stat, not from ps's lstart: lstart is boot time + ticks, and the kernel's boot
# time moves by a second when the wall clock is slewed, which made every process look restarted.
_PROCESSES = r"""python3 -c '
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
        args = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2 :].split()
    args = args.replace(b"\0", b" ").replace(b"\n", b" ").decode(errors="replace").strip()
    print(pid, fields[1], fields[19], args)
'"""


def daemons(env: dict[str, str], deployment: str, address: str) -> set[tuple[str, str, str]]:
    """Every long-running service process of a node: (pid, start time, command) of children of its init."""
    out = on_node(env, deployment, address, _PROCESSES)
    found = set()
    for line in out.splitlines():
        pid, ppid, started, args = [*line.split(" ", 3), "", ""][:4]
        if ppid == "1":
            found.add((pid, started, args))
    return found


def openstack(env: dict[str, str], deployment: str, external_vip: str):
    """An openstacksdk connection as the admin, through the external VIP, verifying its TLS certificate."""
    import openstack as sdk

    password = admin_password(env, deployment)
    ca_file = external_ca(env, deployment)
    return sdk.connect(
        auth_url=f"https://{external_vip}:5000/v3",
        username="admin",
        password=password,
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
        region_name="RegionOne",
        cacert=str(ca_file),
    )


def check_openstack(env: dict[str, str], deployment: str, external_vip: str, compute_hosts: int) -> None:
    """What an operator checks first with a client: token, catalog, compute services."""
    conn = openstack(env, deployment, external_vip)
    assert conn.authorize()  # a token, through the external VIP, TLS verified against the deployment's CA
    services = {service.id: service.type for service in conn.identity.services()}
    assert set(services.values()) >= CATALOG_TYPES
    public = [e for e in conn.identity.endpoints() if e.interface == "public"]
    assert {services[e.service_id] for e in public} >= CATALOG_TYPES
    assert all(e.url.startswith(f"https://{external_vip}:") for e in public)
    wait_computes_up(conn, compute_hosts)
    binaries = {s.binary for s in conn.compute.services()}
    assert {"nova-scheduler", "nova-conductor", "nova-compute"} <= binaries
    data = b"viocli lab image " * 4096  # through glance to the vCenter datastore and back
    image = conn.image.create_image(name="e2e", data=data, disk_format="raw", container_format="bare")
    assert conn.image.get_image(image.id).status == "active"
    assert conn.image.download_image(image).content == data
    conn.image.delete_image(image)
    assert conn.network.find_network("no-such-network") is None
    assert list(conn.block_storage.volumes()) == []
    assert list(conn.orchestration.stacks()) == []


def wait_computes_up(conn, count: int, timeout: float = 300) -> None:
    """Wait until ``count`` nova-compute services report up (each reports every 10 s); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        computes = [s for s in conn.compute.services() if s.binary == "nova-compute"]
        if (len(computes) == count and all(s.state == "up" for s in computes)) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert len(computes) == count and all(s.state == "up" for s in computes), computes


def secrets_file(env: dict[str, str], deployment: str) -> Path:
    """The deployment's secrets store on the test's OMS (plain YAML: the lab never encrypts it)."""
    return Path(env["VIOCLI_STATE_DIR"]) / "deployments" / deployment / "secrets.yml"


def admin_password(env: dict[str, str], deployment: str) -> str:
    """The Keystone admin password, as an operator reads it (``viocli secrets show``)."""
    return run_viocli(env, "secrets", "show", "keystone_admin_password", "-d", deployment).stdout.strip()


def external_ca(env: dict[str, str], deployment: str) -> Path:
    """The CA that signed the external VIP's generated certificate."""
    return Path(env["VIOCLI_STATE_DIR"]) / "deployments" / deployment / "tls" / "external-ca.pem"


def recorded_certificate(env: dict[str, str], deployment: str):
    """The external certificate the deployment records as served (cert-update's, else its own)."""
    from cryptography import x509

    tls = Path(env["VIOCLI_STATE_DIR"]) / "deployments" / deployment / "tls"
    custom = tls / "external-custom.pem"
    source = custom if custom.exists() and '"cert-update"' in _read(tls / "external.json") else tls / "external.crt"
    return x509.load_pem_x509_certificates(source.read_bytes())[0]


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def served_sha1(env: dict[str, str], deployment: str, address: str) -> str:
    """The SHA-1 fingerprint of the external certificate HAProxy serves on a load balancer (it says so itself)."""
    out = on_node(
        env, deployment, address, 'echo "show ssl cert /etc/haproxy/external.pem" | socat stdio /run/haproxy/admin.sock'
    )
    [line] = [line for line in out.splitlines() if line.startswith("SHA1 FingerPrint:")]
    return line.split(":", 1)[1].strip()


def unit_started(env: dict[str, str], deployment: str, address: str, unit: str) -> float:
    """When ``unit`` last became active on a node (seconds since the epoch; 0 when it is not active)."""
    out = on_node(env, deployment, address, f"systemctl show -p ActiveEnterTimestamp --value --timestamp=unix {unit}")
    return float(out.strip().lstrip("@") or 0)


def file_mtime(env: dict[str, str], deployment: str, address: str, path: str) -> float:
    """A file's modification time on a node."""
    return float(on_node(env, deployment, address, f"stat -c %Y {path}").strip())


def status_json(env: dict[str, str], deployment: str) -> list[dict]:
    """``viocli deployment status --format json``, parsed (whatever its exit code)."""
    import json

    result = run_viocli(env, "deployment", "status", "-d", deployment, "--format", "json", timeout=120)
    return json.loads(result.stdout)


def lab_vcenter(env: dict[str, str]):
    """A pyvmomi session with the lab's simulated vCenter, as its admin (TLS verified by the lab CA)."""
    import json as _json

    from viocli.lab.layout import MGMT
    from viocli.vsphere.connection import connect

    info = _json.loads((Path(env["VIOCLI_STATE_DIR"]) / "lab" / "lab.json").read_text())
    user, password = Path(info["vcsim"]["credentials"]).read_text().splitlines()[:2]
    return connect(str(MGMT.host_ip), 8989, user, password, ca_file=Path(info["vcsim"]["ca_file"]))


def power(env: dict[str, str], vm_name: str, on: bool) -> None:
    """Power a VM on or off through vSphere, as an operator (or a power cut) would."""
    from pyVmomi import vim

    from viocli.vsphere.objects import find
    from viocli.vsphere.tasks import wait_for_tasks

    si = lab_vcenter(env)
    vm = find(si, vim.VirtualMachine, vm_name)
    wait_for_tasks(si, [vm.PowerOnVM_Task() if on else vm.PowerOffVM_Task()])


def netns_of(env: dict[str, str], hostname: str) -> str:
    """The network namespace of a lab node (what `ip netns exec NS ...` takes), from `viocli lab status`."""
    import json as _json

    status = _json.loads(run_viocli(env, "lab", "status", "--format", "json").stdout)
    vm = next(node["vm"] for node in status["nodes"] if node["hostname"] == hostname)
    return f"violab-{vm}"
