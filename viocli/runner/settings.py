"""Ansible settings for a run: tuned (the default) or stock (for the benchmark's baseline).

Everything is passed as environment variables and ``ANSIBLE_CONFIG`` points at an empty file, so
no stray ansible.cfg (in the working directory, ~/.ansible.cfg, /etc/ansible) changes a run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from viocli.errors import OperationFailed

MIN_FORKS = 5
MAX_FORKS = 50
FACT_CACHE_TIMEOUT = 24 * 3600
# Ansible's persistent SSH masters live in <deployment dir>/cp (short: a socket path has ~100 bytes).
CONTROL_DIR = "cp"


def ansible_playbook_binary() -> Path:
    """The ansible-playbook installed with viocli (its venv's bin), else the one on PATH.

    viocli is often run as /opt/viocli/bin/viocli under sudo, with that bin dir not on PATH.
    """
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file():
        return beside
    found = shutil.which("ansible-playbook")
    if found is None:
        raise OperationFailed(
            "ansible-playbook is not installed beside viocli nor on PATH",
            hint="reinstall viocli: its dependencies include ansible-core",
        )
    return Path(found)


def mitogen_strategy_dir() -> Path | None:
    """The directory of Mitogen for Ansible's strategy plugins, or None when it is not installed."""
    try:
        import ansible_mitogen
    except ImportError:
        return None
    found = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return found if (found / "mitogen_linear.py").is_file() else None


def forks_for(node_count: int) -> int:
    """One fork per node so every node works at once, within sane bounds."""
    return max(MIN_FORKS, min(MAX_FORKS, node_count))


def ansible_env(
    *,
    work_dir: Path,
    playbook_dir: Path,
    config_file: Path,
    known_hosts: Path,
    node_count: int,
    ssh_key: Path | None = None,
    tuned: bool = True,
    mitogen: bool = True,
) -> dict[str, str]:
    """Environment for ansible-playbook.

    Host keys are always checked against the deployment's own known_hosts file, which viocli
    maintains; tuned adds pipelining, a persistent SSH master, forks sized to the inventory and a
    fact cache that outlives one run (``gathering = smart``) and, unless ``mitogen`` is false or it is
    not installed, Mitogen for Ansible's linear strategy: one Python interpreter per node for the whole
    run instead of an SSH command and a Python start-up per task (host keys are checked the same way:
    Mitogen runs the same ssh with the same options).
    """
    ssh_args = [
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ServerAliveInterval=15",
    ]
    env = {
        "ANSIBLE_CONFIG": str(config_file),
        "ANSIBLE_ROLES_PATH": str(playbook_dir / "roles"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_TIMEOUT": "30",
        # Ansible runs helper commands (ansible-connection, ...) from the same bin directory.
        "PATH": f"{ansible_playbook_binary().parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    if ssh_key is not None:
        env["ANSIBLE_PRIVATE_KEY_FILE"] = str(ssh_key)
    if tuned:
        ssh_args = ["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=300s", *ssh_args]
        env.update(
            {
                "ANSIBLE_PIPELINING": "True",
                "ANSIBLE_FORKS": str(forks_for(node_count)),
                "ANSIBLE_GATHERING": "smart",
                "ANSIBLE_CACHE_PLUGIN": "jsonfile",
                "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(work_dir / "facts"),
                "ANSIBLE_CACHE_PLUGIN_TIMEOUT": str(FACT_CACHE_TIMEOUT),
                "ANSIBLE_SSH_RETRIES": "3",
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work_dir / CONTROL_DIR),
            }
        )
        strategy_dir = mitogen_strategy_dir() if mitogen else None
        if strategy_dir is not None:
            env.update({"ANSIBLE_STRATEGY_PLUGINS": str(strategy_dir), "ANSIBLE_STRATEGY": "mitogen_linear"})
    else:
        env.update({"ANSIBLE_PIPELINING": "False", "ANSIBLE_FORKS": str(MIN_FORKS), "ANSIBLE_GATHERING": "implicit"})
    env["ANSIBLE_SSH_ARGS"] = " ".join(ssh_args)
    return env


def close_ssh_masters(work_dir: Path) -> int:
    """Tell every persistent SSH master of the deployment's Ansible runs to exit; return how many.

    A rebuilt node answers at its old address with a new host key: no run may reuse a master made
    to its old self (it would hang on a dead connection); the next connection checks the new key.
    """
    closed = 0
    for socket in sorted((work_dir / CONTROL_DIR).glob("*")):
        if socket.is_socket():
            subprocess.run(
                ["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "viocli-ssh-master"],
                capture_output=True,
                timeout=15,
                check=False,
            )
            socket.unlink(missing_ok=True)
            closed += 1
    return closed
