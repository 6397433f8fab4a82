"""The node shell of `deployment status`: the ssh options viocli uses, and each collector's command as
the node's shell receives it (run here through a stand-in ``ssh`` that runs it with ``sh -c``)."""

from __future__ import annotations

import socket
import stat
import threading
from pathlib import Path

import pytest

from viocli.health import balancer, database, memcached, nodes
from viocli.health.shell import SSH_FAILED, TIMED_OUT, SshShell, ssh_banner

from .test_status_fakes import ha_deployment

# Stands in for ssh: drops the options, runs the remote command line with sh -c, as sshd would.
FAKE_SSH = """#!/bin/sh
for last; do :; done
case " $* " in *" -O exit "*) exit 0 ;; esac
if [ -n "$FAKE_SSH_FAIL" ]; then echo "ssh: connect to host 10.0.0.1 port 22: No route to host" >&2; exit 255; fi
exec sh -c "$last"
"""
# Stand-ins for the node's tools: print how they were called (one argument a line).
FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0")"
for arg; do printf '%s\\n' "$arg"; done
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SshShell:
    """An SshShell whose ``ssh`` runs commands here, with mysql, rabbitmqctl, socat, chronyc, df and ip faked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "ssh", FAKE_SSH)
    for tool in ("mysql", "rabbitmqctl", "socat", "chronyc", "df", "ip"):
        _executable(bin_dir / tool, FAKE_TOOL)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    shell = SshShell(tmp_path / "id_ed25519", tmp_path / "known_hosts")
    yield shell
    shell.close()


def _node(name: str = "database01"):
    return next(n for n in ha_deployment()[1] if n.name == name)


def test_ssh_checks_host_keys_with_the_deployment_known_hosts_and_never_prompts(tmp_path: Path) -> None:
    shell = SshShell(tmp_path / "id_ed25519", tmp_path / "known_hosts")
    try:
        argv = shell.ssh_argv(_node())
    finally:
        shell.close()
    joined = " ".join(argv)
    assert argv[0] == "ssh" and argv[-1] == "root@10.20.0.102"
    assert f"-i {tmp_path / 'id_ed25519'}" in joined
    for option in (
        f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "ConnectTimeout=5",
    ):
        assert f"-o {option}" in joined
    assert "StrictHostKeyChecking=no" not in joined and "accept-new" not in joined


def test_every_remote_command_has_a_timeout_and_runs_as_root(tmp_path: Path) -> None:
    shell = SshShell(tmp_path / "k", tmp_path / "h")
    assert shell.remote_command("df -P /", 5) == "timeout -k 1 5 sh -c 'df -P /'"
    shell.user = "viocli"
    assert shell.remote_command("df -P /", 8) == "sudo -n timeout -k 1 8 sh -c 'df -P /'"
    shell.close()


def test_each_collector_command_reaches_the_node_intact(fake_node: SshShell) -> None:
    node = _node()
    mysql = fake_node.run(node, database.GALERA_COMMAND)
    assert mysql.rc == 0, mysql
    assert mysql.stdout.splitlines() == [
        "mysql",
        "-N",
        "-B",
        "-e",
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size','wsrep_cluster_status',"
        "'wsrep_local_state_comment','wsrep_cluster_state_uuid','wsrep_ready')",
    ]
    rabbit = fake_node.run(node, database.RABBITMQ_COMMAND)
    assert rabbit.stdout.split() == ["rabbitmqctl", "--quiet", "cluster_status", "--formatter", "json"]
    haproxy = fake_node.run(node, balancer.HAPROXY_COMMAND)
    assert haproxy.stdout.split() == ["socat", "stdio", "/run/haproxy/admin.sock"]
    assert fake_node.run(node, nodes.CHRONY_COMMAND).stdout.split() == ["chronyc", "-n", "tracking"]
    assert fake_node.run(node, nodes.df_command(node)).stdout.split() == ["df", "-P", "/", "/var/lib/mysql"]
    assert fake_node.run(node, balancer.ADDRESSES_COMMAND).stdout.split() == ["ip", "-o", "addr", "show"]


def test_the_memcached_probe_asks_stats_and_prints_the_answer(fake_node: SshShell) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    asked: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            asked.append(conn.recv(64))
            conn.sendall(b"STAT pid 812\r\nSTAT uptime 5\r\nSTAT curr_connections 2\r\nEND\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    node = _node("controller01")
    command = memcached.probe_command(node, port).replace(str(node.mgmt_ip), "127.0.0.1")
    result = fake_node.run(node, command)
    server.close()
    assert asked == [b"stats\r\n"]
    assert result.rc == 0, result
    assert memcached.parse_stats(result.stdout) == {"pid": "812", "uptime": "5", "curr_connections": "2"}
    refused = fake_node.run(node, command)
    assert refused.rc != 0 and "ConnectionRefusedError" in refused.reason()


def test_ssh_failures_and_time_outs_come_back_as_results(fake_node: SshShell, monkeypatch) -> None:
    node = _node()
    monkeypatch.setenv("FAKE_SSH_FAIL", "1")
    failed = fake_node.run(node, "true")
    assert failed.rc == SSH_FAILED and failed.reason().endswith("No route to host")
    monkeypatch.delenv("FAKE_SSH_FAIL")
    fake_node.connect_timeout = 0
    slow = fake_node.run(node, "sleep 30", timeout=0.2)
    assert slow.rc in (TIMED_OUT, 143, 137)  # the node's timeout, else ours


def test_ssh_banner_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    import viocli.health.shell as shell_module

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
    threading.Thread(target=lambda: server.accept()[0].sendall(banner), daemon=True).start()
    connect = socket.create_connection
    monkeypatch.setattr(
        shell_module.socket, "create_connection", lambda _addr, timeout: connect(("127.0.0.1", port), timeout)
    )
    try:
        assert ssh_banner("10.20.0.102", timeout=2) == (True, "SSH-2.0-OpenSSH_9.2p1 Debian-2")
    finally:
        server.close()
    refused = ssh_banner("10.20.0.102", timeout=2)
    assert refused[0] is False and "10.20.0.102:22" in refused[1]
