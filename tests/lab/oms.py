"""Helpers shared by the lab tests: an OMS of their own (state, log, config under a tmp dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
