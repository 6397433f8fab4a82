"""Run one command on one node over SSH, the way viocli reaches its nodes: the OMS key, the deployment's
own known_hosts, host keys always checked, never a password prompt, and a timeout on everything.

The collectors only see :class:`NodeShell` (``run(node, command, timeout) -> (rc, stdout, stderr)``),
so tests hand them a fake. :class:`SshShell` multiplexes every command to a node over one SSH
connection (a control master per node, private to this run), so a status check costs one TCP and key
exchange per node however many collectors ask.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Protocol

from viocli.inventory.topology import Node

CONNECT_TIMEOUT = 5  # seconds for the TCP connection and SSH handshake
COMMAND_TIMEOUT = 5.0  # seconds a remote command may run (the node kills it after that)
TIMED_OUT = 124  # rc when a command ran out of time (as coreutils' timeout reports it)
STREAM_CIPHERS = "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-gcm@openssh.com"
SSH_FAILED = 255  # rc when ssh itself failed: no connection, host key mismatch, key refused


class CommandResult(NamedTuple):
    """The outcome of one remote command."""

    rc: int
    stdout: str
    stderr: str

    def reason(self) -> str:
        """The last non-empty line of stderr (else stdout): why a command failed, for a message."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1][:200]
        return "timed out" if self.rc == TIMED_OUT else f"exit status {self.rc}"


class NodeShell(Protocol):
    """Runs a shell command on a node as root."""

    def run(self, node: Node, command: str, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        """Run ``command`` (a shell command line) on ``node``; never raises for a remote failure."""
        ...


class SshShell:
    """:class:`NodeShell` over the ``ssh`` client with viocli's key and the deployment's known_hosts."""

    def __init__(self, key: Path, known_hosts: Path, user: str = "root", connect_timeout: int = CONNECT_TIMEOUT):
        self.key = key
        self.known_hosts = known_hosts
        self.user = user
        self.connect_timeout = connect_timeout
        # Control sockets of this run only: a private directory, removed by close().
        self._control_dir = Path(tempfile.mkdtemp(prefix="viocli-ssh-"))
        self._used: dict[str, Node] = {}

    def _options(self) -> list[str]:
        return [
            "-i", str(self.key),
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "IdentitiesOnly=yes",
            "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=2",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={self._control_dir}/%C", "-o", "ControlPersist=30",
        ]  # fmt: skip

    def stream_argv(self, node: Node, command: str, *, stdin: bool = False) -> list[str]:
        """The ssh command line that runs ``command`` on ``node`` as root, with no time limit, over a
        connection of its own (a long stream should not share the control master of short commands)."""
        remote = command if self.user == "root" else f"sudo -n sh -c {shlex.quote(command)}"
        options = self._options()
        options = options[: options.index("ControlMaster=auto") - 1]
        # AES-GCM first: with the CPU's AES instructions it costs the OMS the least per byte streamed
        options += ["-c", STREAM_CIPHERS]
        return ["ssh", *options, "-T", *([] if stdin else ["-n"]), f"{self.user}@{node.mgmt_ip}", remote]

    def ssh_argv(self, node: Node) -> list[str]:
        """The ssh command line (without the remote command) for ``node``."""
        return ["ssh", *self._options(), "-T", "-n", f"{self.user}@{node.mgmt_ip}"]

    def remote_command(self, command: str, timeout: float) -> str:
        """``command`` as the node runs it: killed after ``timeout`` seconds, as root."""
        wrapped = f"timeout -k 1 {max(1, round(timeout))} sh -c {shlex.quote(command)}"
        return wrapped if self.user == "root" else f"sudo -n {wrapped}"

    def run(self, node: Node, command: str, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        """Run ``command`` on ``node``; ssh failures come back as rc 255, time-outs as rc 124."""
        self._used[node.name] = node
        argv = [*self.ssh_argv(node), self.remote_command(command, timeout)]
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout + self.connect_timeout + 2,
            )
        except subprocess.TimeoutExpired:
            return CommandResult(TIMED_OUT, "", f"no answer from {node.name} within {timeout:.0f} s")
        except OSError as error:  # no ssh client on the OMS
            return CommandResult(SSH_FAILED, "", f"cannot run ssh: {error}")
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        """Stop this run's SSH control masters and remove their sockets."""
        nodes = list(self._used.values())
        if nodes:
            with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
                list(pool.map(self._stop_master, nodes))
        shutil.rmtree(self._control_dir, ignore_errors=True)

    def _stop_master(self, node: Node) -> None:
        argv = ["ssh", *self._options(), "-O", "exit", f"{self.user}@{node.mgmt_ip}"]
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):  # else it ends after ControlPersist
            subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=3)


def ssh_banner(address: str, timeout: float = CONNECT_TIMEOUT) -> tuple[bool, str]:
    """Whether sshd answers on ``address`` with its banner (no key needed, host key not checked)."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as conn:
            conn.settimeout(timeout)
            banner = conn.recv(64)
    except OSError as error:
        return False, f"{address}:22: {error.strerror or error}"
    if banner.startswith(b"SSH-"):
        return True, banner.split(b"\r")[0].split(b"\n")[0].decode("ascii", "replace")
    return False, f"{address}:22 answers but not with an SSH banner"
