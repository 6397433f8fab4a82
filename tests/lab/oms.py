"""Helpers shared by the lab tests: an OMS of their own (state, log, config under a tmp dir)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

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


def daemons(env: dict[str, str], deployment: str, address: str) -> set[tuple[str, str, str]]:
    """Every long-running service process of a node: (pid, start time, command) of children of its init."""
    out = on_node(env, deployment, address, "ps -eo pid=,ppid=,lstart=,args=")
    found = set()
    for line in out.splitlines():
        pid, ppid, *rest = line.split()
        if ppid == "1":
            found.add((pid, " ".join(rest[:5]), " ".join(rest[5:])))
    return found


def openstack(env: dict[str, str], deployment: str, external_vip: str):
    """An openstacksdk connection as the admin, through the external VIP, verifying its TLS certificate."""
    import openstack as sdk

    password = run_viocli(env, "secrets", "show", "keystone_admin_password", "-d", deployment).stdout.strip()
    ca_file = Path(env["VIOCLI_STATE_DIR"]) / "deployments" / deployment / "tls" / "external-ca.pem"
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
