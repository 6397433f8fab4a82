"""``deployment getlogs``: what an operator relies on. ``--since`` and the bundle's name; each role's
collection plan from the service descriptors; the node's collection script run for real in a local bash
(caps, rotated and old files, key material never read, commands' exit codes and cuts); the bundle writer
(every member under one directory, a manifest whose sizes and SHA-256 match, no secret left, nothing
under the final name when abandoned, mode 0600); and the whole command with vCenter and SSH faked
(powered-off and missing nodes listed and not contacted, exit 1 only for a powered-on node that gave
nothing, --node/--role/--non-node-logs, bad input, the free-space refusal). Redaction's own rules are
tested in test_bundle_redaction.py.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from viocli.backup.target import DirectoryTarget
from viocli.bundle import remote
from viocli.bundle.archive import BundleWriter
from viocli.bundle.plan import NodePlan, node_plan
from viocli.bundle.redaction import BundleRedactor
from viocli.cli.main import cli
from viocli.errors import BadInput, OperationFailed, Refused
from viocli.health.shell import CommandResult
from viocli.inventory.load import load_inventory
from viocli.inventory.topology import allocate, resolve_nodes
from viocli.ops import getlogs as ops_getlogs
from viocli.ops.getlogs import bundle_name, parse_since, raise_if_failed
from viocli.services import load_services

from .test_lifecycle import NAME, NODES, REPO, Env

MIB = 1024 * 1024
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC).timestamp()
VCENTER_PASSWORD = "VcPass-0123456789"  # what test_lifecycle's Env stores as the vCenter password


# --- --since and the bundle's name ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "back"),
    [("30m", 1800), ("2h", 7200), ("3d", 3 * 86400), ("1w", 7 * 86400), ("45s", 45), (" 2H ", 7200)],
)
def test_since_as_a_duration_is_that_long_before_now(text: str, back: int) -> None:
    assert parse_since(text, now=NOW) == NOW - back


def test_since_as_a_date_or_time_is_utc_unless_it_says_otherwise() -> None:
    assert parse_since("2026-11-20", now=NOW) == datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    assert parse_since("2026-11-20T08:00", now=NOW) == datetime(2026, 11, 20, 8, tzinfo=UTC).timestamp()
    assert parse_since("2026-11-20T08:00+02:00", now=NOW) == datetime(2026, 11, 20, 6, tzinfo=UTC).timestamp()
    assert parse_since(None, now=NOW) is None


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-2h", "10x", "", "2026-13-40"])
def test_since_that_is_neither_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput) as bad:
        parse_since(text, now=NOW)
    assert bad.value.exit_code == 2
    assert "not a duration or a date" in bad.value.message


def test_since_in_the_future_is_bad_input() -> None:
    with pytest.raises(BadInput) as bad:
        parse_since("2026-11-21", now=NOW)
    assert bad.value.exit_code == 2 and "in the future" in bad.value.message


def test_bundle_name_is_the_deployment_and_a_utc_stamp() -> None:
    moment = datetime(2026, 11, 20, 9, 5, 7, tzinfo=timezone(timedelta(hours=2)))
    assert bundle_name("vio-prod", moment) == "viocli-logs-vio-prod-20261120T070507Z.tar.gz"


# --- plans ----------------------------------------------------------------------------------------
@pytest.fixture
def ha_nodes(example) -> dict[str, Any]:
    loaded = load_inventory(example("ha"))
    return {n.name: n for n in resolve_nodes(loaded.model, allocate(loaded.model))}


@pytest.fixture
def services():
    return load_services(playbook_dir=REPO / "playbooks")


def _names(plan: NodePlan) -> set[str]:
    return {name for name, _ in plan.commands}


def test_tinys_one_node_gets_every_roles_logs_and_diagnostics(example, services) -> None:
    loaded = load_inventory(example("tiny"))
    (node,) = resolve_nodes(loaded.model, allocate(loaded.model))
    plan = node_plan(node, services)
    assert {"galera-status", "rabbitmq-cluster-status", "haproxy-stats", "service-status"} <= _names(plan)
    assert {"/var/log/mysql", "/etc/haproxy", "/var/log/nova", "/etc/keystone"} <= set(plan.paths)
    assert "'nova-compute*'" in plan.command("service-status")


def test_each_role_collects_its_services_logs_config_and_diagnostics(ha_nodes, services) -> None:
    db = node_plan(ha_nodes["database01"], services)
    assert {"galera-status", "rabbitmq-cluster-status"} <= _names(db)
    assert {"/var/log/mysql", "/var/log/rabbitmq", "/etc/mysql"} <= set(db.paths)
    assert "haproxy-stats" not in _names(db) and "/var/log/nova" not in db.paths

    lb = node_plan(ha_nodes["loadbalancer01"], services)
    assert "haproxy-stats" in _names(lb) and "/etc/haproxy" in lb.paths
    assert "galera-status" not in _names(lb) and "/var/log/mysql" not in lb.paths

    ctl = node_plan(ha_nodes["controller01"], services)
    assert "/var/log/nova" in ctl.paths and "/etc/nova" in ctl.paths
    assert {"nova-api", "nova-scheduler", "nova-conductor"} <= set(ctl.units)
    assert "nova-api" in ctl.command("service-status")
    assert (ctl.node, ctl.address) == ("controller01", str(ha_nodes["controller01"].mgmt_ip))

    for node in ha_nodes.values():
        plan = node_plan(node, services)
        assert {"journal", "df", "free", "mounts", "addresses", "routes", "packages"} <= _names(plan), node.name
        assert "/var/log/viocli" in plan.paths and "/var/log/chrony" in plan.paths  # every node's, and chrony's
        assert len(plan.paths) == len(set(plan.paths))


def test_since_reaches_the_journal_and_the_plan(ha_nodes, services) -> None:
    plain = node_plan(ha_nodes["database01"], services)
    assert "--since" not in plain.command("journal") and plain.since is None
    recent = node_plan(ha_nodes["database01"], services, since=1700000000.7, recent_only=True, cap=1234)
    assert recent.command("journal").endswith(" --since @1700000000")
    assert (recent.since, recent.recent_only, recent.cap) == (1700000000.7, True, 1234)


def test_unit_patterns_are_shell_quoted(ha_nodes, services) -> None:
    plan = node_plan(ha_nodes["compute01"], services)
    assert "nova-compute*" in plan.units
    status = plan.command("service-status")
    assert "'nova-compute*'" in status and " nova-compute* " not in status
    assert status.endswith("; exit 0")  # an inactive unit is not a collection failure


# --- the node's script, run here ------------------------------------------------------------------
class LocalShell:
    """SSH to a node, faked: every command runs in this machine's bash. Nodes in ``down`` answer like an
    unreachable host; every node asked is recorded in ``asked``."""

    def __init__(self, down: set[str] = frozenset()):
        self.down = set(down)
        self.asked: list[tuple[str, str]] = []
        self.closed = False

    def stream_argv(self, node, command: str, *, stdin: bool = False) -> list[str]:
        assert stdin
        self.asked.append(("stream", node.name))
        if node.name in self.down:
            return ["bash", "-c", f"echo 'ssh: connect to host {node.mgmt_ip} port 22: No route to host' >&2; exit 255"]
        return ["bash", "-c", command]

    def run(self, node, command: str, timeout: float = 30) -> CommandResult:
        self.asked.append(("run", node.name))
        if node.name in self.down:
            return CommandResult(255, "", f"ssh: connect to host {node.mgmt_ip} port 22: No route to host")
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout)
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        self.closed = True


NODE = SimpleNamespace(name="node1", mgmt_ip="127.0.0.1")
CAP = 1000
BIG = b"".join(b"%05d\n" % i for i in range(500))  # 3000 bytes, every line different


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Any]:
    """Logs and keys under tmp_path, as a node would have them; since: ten minutes ago."""
    since = time.time() - 600
    logs, keys = tmp_path / "var" / "log" / "svc", tmp_path / "etc" / "svc"
    (keys / "fernet-keys").mkdir(parents=True)
    logs.mkdir(parents=True)
    files = {
        "small": (logs / "small.log", b"small line\n" * 5),
        "big": (logs / "big.log", BIG),
        "rotated": (logs / "x.log.1", b"rotated one\n"),
        "rotated_gz": (logs / "x.log.2.gz", gzip.compress(b"rotated two\n", mtime=0)),
        "old": (logs / "old.log", b"from last week\n"),
        "fernet": (keys / "fernet-keys" / "0", b"FERNET-KEY-MATERIAL"),
        "key": (keys / "foo.key", b"PRIVATE-KEY-MATERIAL"),
        "conf": (keys / "svc.conf", b"[DEFAULT]\ndebug = true\n"),
    }
    for path, data in files.values():
        path.write_bytes(data)
    os.utime(files["old"][0], (since - 3600, since - 3600))
    commands = (
        ("ok", "echo fine"),
        ("fails", "echo broken; exit 3"),
        ("big", "yes y | head -c 5000"),
    )
    missing = str(tmp_path / "var" / "log" / "nosuch")
    return {
        "files": files,
        "since": since,
        "missing": missing,
        "plan": lambda **kw: NodePlan(
            node="node1",
            address="127.0.0.1",
            paths=(str(logs), str(keys), missing),
            commands=commands,
            units=(),
            **{"since": since, "recent_only": True, "cap": CAP, **kw},
        ),
    }


def _collect(plan: NodePlan, shell=None) -> tuple[remote.NodeStream, dict[tuple[str, str], bytes]]:
    got: dict[tuple[str, str], bytes] = {}

    def handle(kind: str, name: str, data: bytes) -> None:
        assert (kind, name) not in got
        got[(kind, name)] = data

    stream = remote.collect(shell or LocalShell(), NODE, plan, handle)
    return stream, got


def test_a_file_under_two_listed_paths_is_sent_once(tree) -> None:
    small = tree["files"]["small"][0]
    plan = replace(tree["plan"](), paths=(str(small.parent), str(small), str(small.parent)))
    _, got = _collect(plan)  # _collect's handler fails on a second copy of a file
    assert got[("file", str(small))] == tree["files"]["small"][1]
    # The directory's two current logs (big.log capped), each counted once.
    assert remote.estimate(LocalShell(), NODE, plan) == (len(tree["files"]["small"][1]) + CAP, 2)


def test_the_node_sends_recent_logs_capped_and_commands_with_their_status(tree) -> None:
    files = tree["files"]
    stream, got = _collect(tree["plan"]())
    collected = {name: data for (kind, name), data in got.items() if kind == "file"}
    assert set(collected) == {str(files[k][0]) for k in ("small", "big", "conf")}
    assert collected[str(files["small"][0])] == files["small"][1]
    assert collected[str(files["big"][0])] == BIG[-CAP:]  # the newest lines
    assert stream.cuts[str(files["big"][0])] == (len(BIG), CAP)

    commands = {name: data for (kind, name), data in got.items() if kind == "command"}
    assert set(commands) == {"ok", "fails", "big"}
    assert commands["ok"] == b"fine\n" and commands["fails"] == b"broken\n"
    assert commands["big"] == b"y\n" * (CAP // 2)
    assert {name: rc for name, (rc, _) in stream.commands.items()} == {"ok": 0, "fails": 3, "big": 0}
    assert stream.cuts["command:big"] == (5000, CAP)
    assert set(stream.cuts) == {str(files["big"][0]), "command:big"}

    assert stream.absent == [tree["missing"]]
    assert stream.errors == []
    assert stream.received == len(got) == 6


def test_without_recent_only_and_since_the_rotated_and_old_files_come_too_but_never_keys(tree) -> None:
    files = tree["files"]
    stream, got = _collect(tree["plan"](since=None, recent_only=False))
    collected = {name: data for (kind, name), data in got.items() if kind == "file"}
    wanted = ("small", "big", "conf", "rotated", "rotated_gz", "old")
    assert set(collected) == {str(files[k][0]) for k in wanted}
    assert collected[str(files["rotated_gz"][0])] == files["rotated_gz"][1]
    assert collected[str(files["old"][0])] == files["old"][1]
    everything = b"".join(got.values())
    assert b"FERNET-KEY-MATERIAL" not in everything and b"PRIVATE-KEY-MATERIAL" not in everything
    assert stream.errors == []


def test_the_estimate_is_the_capped_bytes_and_the_files_counted(tree) -> None:
    files = tree["files"]
    size = lambda *keys: sum(min(len(files[k][1]), CAP) for k in keys)  # noqa: E731
    assert remote.estimate(LocalShell(), NODE, tree["plan"]()) == (size("small", "big", "conf"), 3)
    every = ("small", "big", "conf", "rotated", "rotated_gz", "old")
    assert remote.estimate(LocalShell(), NODE, tree["plan"](since=None, recent_only=False)) == (size(*every), 6)
    down = LocalShell(down={"node1"})
    assert "No route to host" in remote.estimate(down, NODE, tree["plan"]())


def test_an_unreachable_node_is_an_error_not_an_exception(tree) -> None:
    stream, got = _collect(tree["plan"](), LocalShell(down={"node1"}))
    assert got == {}
    assert sorted(stream.errors) == [
        "ssh node1 (127.0.0.1): ssh: connect to host 127.0.0.1 port 22: No route to host",
        "the stream from node1 broke off: empty file",
    ]


def test_the_ssh_child_dies_with_viocli(tree, monkeypatch) -> None:
    """The stream's ssh gets SIGTERM when viocli dies (PR_SET_PDEATHSIG armed in the child)."""
    probe = (
        "import ctypes, sys; s = ctypes.c_int(-1); ctypes.CDLL(None).prctl(2, ctypes.byref(s)); "
        "sys.stderr.write(f'pdeathsig={s.value}\\n'); sys.exit(1)"
    )
    shell = LocalShell()
    monkeypatch.setattr(shell, "stream_argv", lambda node, command, stdin=False: [sys.executable, "-c", probe])
    stream, _ = _collect(tree["plan"](), shell)
    assert "ssh node1 (127.0.0.1): pdeathsig=15" in stream.errors


# --- the bundle writer ----------------------------------------------------------------------------
SECRET = "Zebra-Secret-4711-xyz"
BUNDLE = "viocli-logs-t-20261120T120000Z.tar.gz"
TOP = BUNDLE.removesuffix(".tar.gz")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_a_finished_bundle_has_one_top_dir_a_matching_manifest_and_no_secret(out: Path) -> None:
    writer = BundleWriter(DirectoryTarget(out), BUNDLE, BundleRedactor([SECRET]), top=TOP)
    writer.add("n1/files/etc/app.conf", f"[db]\nconnection = mysql://nova@db/nova?x={SECRET}\n".encode(), node="n1",
               source="file: /etc/app.conf")  # fmt: skip
    writer.add("n1/files/var/log/app.log.2.gz", gzip.compress(f"login with {SECRET} ok\n".encode()), node="n1",
               source="file: /var/log/app.log.2.gz")  # fmt: skip
    writer.add("n1/commands/ok.txt", b"fine\n", node="n1", source="command: echo fine")
    writer.add("oms/show.txt", b"nothing secret\n", node="oms", source="viocli show")
    size = writer.finish({"deployment": "t"})

    bundle = out / BUNDLE
    assert os.listdir(out) == [BUNDLE]
    assert size == bundle.stat().st_size
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    members = _members(bundle)
    assert all(name.startswith(f"{TOP}/") for name in members)
    manifest = json.loads(members.pop(f"{TOP}/manifest.json"))
    assert manifest["deployment"] == "t"
    listed = {f["path"]: f for f in manifest["files"]}
    assert {f"{TOP}/{path}" for path in listed} == set(members)
    for path, entry in listed.items():
        data = members[f"{TOP}/{path}"]
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest(), path
    assert listed["n1/files/etc/app.conf"]["node"] == "n1" and listed["oms/show.txt"]["node"] == "oms"
    assert listed["n1/files/etc/app.conf"]["redactions"] >= 1
    assert listed["n1/files/var/log/app.log.2.gz"]["redactions"] >= 1
    assert members[f"{TOP}/n1/commands/ok.txt"] == b"fine\n"
    inside_gz = gzip.decompress(members[f"{TOP}/n1/files/var/log/app.log.2.gz"])
    assert inside_gz.startswith(b"login with ") and SECRET.encode() not in inside_gz
    for name, data in members.items():
        assert SECRET.encode() not in data, name


def test_an_abandoned_bundle_leaves_nothing_in_the_directory(out: Path, monkeypatch) -> None:
    writer = BundleWriter(DirectoryTarget(out), BUNDLE, BundleRedactor([SECRET]), top=TOP)
    writer.add("n1/files/var/log/big.log", os.urandom(2 * MIB), node="n1", source="file: /var/log/big.log")
    writer.abandon()
    assert os.listdir(out) == []  # neither the final name nor the partial file
    with pytest.raises(OperationFailed):
        writer.add("n1/files/late.log", b"late\n", node="n1", source="file: /late.log")
    assert os.listdir(out) == []
    # Once dropped, its streams print nothing (no "Exception ignored" traceback on the operator's screen).
    ignored: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    del writer
    gc.collect()
    assert ignored == []


# --- the whole command ----------------------------------------------------------------------------
class Lab:
    """The HA deployment of test_lifecycle; vCenter answers ``states``; every node "is" a directory
    under tmp_path/nodes/NAME holding one log (with the vCenter password in it), reached through a
    LocalShell; plans collect that directory and one command."""

    def __init__(self, monkeypatch, example, tmp_path: Path):
        self.env = Env(monkeypatch, example)
        self.settings = self.env.settings
        self.states: dict[str, str] = dict.fromkeys(NODES, "poweredOn")
        self.vcenter_error: str | None = None
        self.shell = LocalShell()
        self.shells = 0
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.root = tmp_path / "nodes"
        for node in NODES:
            (self.root / node).mkdir(parents=True)
            (self.root / node / "service.log").write_text(f"{node} started, password {VCENTER_PASSWORD}\n")
        monkeypatch.setattr(ops_getlogs, "_vcenter", self._vcenter)
        monkeypatch.setattr(ops_getlogs, "node_shell", self._shell)
        monkeypatch.setattr(ops_getlogs, "node_plan", self._plan)

    def _vcenter(self, settings, deployment):
        assert deployment.name == NAME
        if self.vcenter_error:
            return {}, None, self.vcenter_error
        return dict(self.states), {"vms": sorted(self.states)}, None

    def _shell(self, settings, deployment):
        self.shells += 1
        return self.shell

    def _plan(self, node, services, *, since=None, recent_only=False, cap=0) -> NodePlan:
        assert services  # the descriptors were read
        return NodePlan(
            node=node.name,
            address=str(node.mgmt_ip),
            paths=(str(self.root / node.name),),
            commands=(("hello", f"echo hello from {node.name}"),),
            units=(),
            since=since,
            recent_only=recent_only,
            cap=cap,
        )

    def getlogs(self, **kwargs: Any) -> ops_getlogs.GetlogsResult:
        kwargs.setdefault("output", self.out)
        return ops_getlogs.getlogs(self.settings, NAME, workers=3, **kwargs)

    def asked(self) -> set[str]:
        return {name for _, name in self.shell.asked}

    def bundle(self, result: ops_getlogs.GetlogsResult) -> tuple[dict[str, bytes], dict[str, Any]]:
        (name,) = os.listdir(self.out)
        assert result.location == f"{self.out}/{name}"
        assert result.size == (self.out / name).stat().st_size
        top = name.removesuffix(".tar.gz")
        members = _members(self.out / name)
        assert all(m.startswith(f"{top}/") for m in members)
        members = {m.removeprefix(f"{top}/"): data for m, data in members.items()}
        return members, json.loads(members.pop("manifest.json"))


@pytest.fixture
def lab(viocli_env, monkeypatch, example, tmp_path) -> Lab:
    return Lab(monkeypatch, example, tmp_path)


def _file(node: str, lab: Lab) -> str:
    return f"{node}/files{lab.root}/{node}/service.log"


def test_powered_off_and_missing_nodes_are_listed_and_not_contacted(lab: Lab) -> None:
    lab.states["database02"] = "poweredOff"
    lab.states["compute02"] = "missing"
    result = lab.getlogs()

    by_node = {n.node: n for n in result.nodes}
    assert sorted(by_node) == sorted(NODES) and result.oms
    assert (by_node["database02"].status, by_node["database02"].power_state) == ("powered off", "poweredOff")
    assert (by_node["compute02"].status, by_node["compute02"].power_state) == ("missing from vCenter", "missing")
    assert lab.asked() == set(NODES) - {"database02", "compute02"}
    assert lab.shell.closed
    raise_if_failed(result)  # nothing is expected of a VM that is off or gone

    members, manifest = lab.bundle(result)
    assert manifest["deployment"] == NAME and manifest["vcenter_error"] is None
    assert manifest["nodes"]["database02"]["status"] == "powered off"
    assert manifest["nodes"]["compute02"]["status"] == "missing from vCenter"
    assert manifest["nodes"]["database02"]["files"] == 0
    for node in set(NODES) - {"database02", "compute02"}:
        assert manifest["nodes"][node]["status"] == "collected", manifest["nodes"][node]
        assert manifest["nodes"][node]["files"] == 2 and by_node[node].files == 2
        assert members[f"{node}/commands/hello.txt"] == f"hello from {node}\n".encode()
        assert members[_file(node, lab)].startswith(f"{node} started, password ".encode())
    assert not any(m.startswith(("database02/", "compute02/")) for m in members)
    assert {"oms/show.txt", "oms/show-p.yml", "oms/state/nodes.json", "oms/vcenter-vms.json"} <= set(members)
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(members)
    for path, data in members.items():
        assert listed[path]["sha256"] == hashlib.sha256(data).hexdigest(), path
        assert VCENTER_PASSWORD.encode() not in data, path
    assert listed["controller01/commands/hello.txt"]["source"] == "command: echo hello from controller01"
    assert result.redactions >= len(NODES) - 2


def test_exit_1_only_when_a_powered_on_node_gave_nothing(lab: Lab) -> None:
    lab.states["database02"] = "poweredOff"
    lab.shell.down = {"controller02", "database02"}
    result = lab.getlogs(nodes=["controller01", "controller02", "database02"])
    by_node = {n.node: n for n in result.nodes}
    assert by_node["controller02"].status == "unreachable" and by_node["controller02"].files == 0
    assert any("No route to host" in p for p in by_node["controller02"].problems)
    assert by_node["controller01"].status == "collected"
    assert [n.node for n in result.failed] == ["controller02"]
    with pytest.raises(OperationFailed) as failed:
        raise_if_failed(result)
    assert failed.value.exit_code == 1
    assert "controller02 (size estimate: ssh: connect to host" in failed.value.message  # why, not just "unreachable"
    assert "No route to host" in failed.value.message
    assert "database02" not in failed.value.message
    assert result.location in failed.value.message  # the bundle is still there
    _, manifest = lab.bundle(result)
    assert manifest["nodes"]["controller02"]["status"] == "unreachable"


def test_when_vcenter_cannot_be_asked_every_node_is_tried(lab: Lab) -> None:
    lab.vcenter_error = "vim.fault.InvalidLogin: Cannot complete login"
    lab.shell.down = {"loadbalancer01"}
    result = lab.getlogs(roles=["LoadBalancer"])
    assert lab.asked() == {"loadbalancer01", "loadbalancer02"}
    assert [n.node for n in result.failed] == ["loadbalancer01"]  # power state unknown: it counts
    _, manifest = lab.bundle(result)
    assert manifest["vcenter_error"] == lab.vcenter_error
    assert manifest["nodes"]["loadbalancer02"]["power_state"] is None


def test_node_and_role_narrow_the_collection_and_leave_out_the_oms(lab: Lab) -> None:
    result = lab.getlogs(nodes=["controller01"], roles=["DB"])
    assert [n.node for n in result.nodes] == ["database01", "database02", "database03", "controller01"]
    assert not result.oms and result.oms_files == 0
    assert lab.asked() == {"database01", "database02", "database03", "controller01"}
    members, manifest = lab.bundle(result)
    assert {m.split("/")[0] for m in members} == {"database01", "database02", "database03", "controller01"}
    assert manifest["options"]["oms"] is False
    assert manifest["options"]["nodes"] == ["database01", "database02", "database03", "controller01"]
    assert sorted(manifest["nodes"]) == ["controller01", "database01", "database02", "database03"]


def test_node_with_non_node_logs_adds_the_oms(lab: Lab) -> None:
    result = lab.getlogs(nodes=["controller01"], non_node_logs=True)
    assert [n.node for n in result.nodes] == ["controller01"] and result.oms
    members, _ = lab.bundle(result)
    assert {m.split("/")[0] for m in members} == {"controller01", "oms"}


def test_non_node_logs_alone_is_only_the_oms_part(lab: Lab) -> None:
    result = lab.getlogs(non_node_logs=True)
    assert result.nodes == [] and result.oms and result.oms_files > 0
    assert lab.shells == 0 and lab.asked() == set()
    members, manifest = lab.bundle(result)
    assert members and all(m.startswith("oms/") for m in members)
    assert manifest["nodes"] == {} and result.oms_files == len(members)
    assert json.loads(members["oms/vcenter-vms.json"]) == {"vms": {"vms": sorted(NODES)}, "error": None}


def test_an_unknown_node_is_bad_input_with_a_guess(lab: Lab) -> None:
    with pytest.raises(BadInput) as bad:
        lab.getlogs(nodes=["controler01"])
    assert bad.value.exit_code == 2
    assert "controler01" in bad.value.message and "did you mean controller01?" in bad.value.message
    assert os.listdir(lab.out) == [] and lab.asked() == set()


def test_output_and_nfs_together_are_bad_input(lab: Lab) -> None:
    with pytest.raises(BadInput) as bad:
        lab.getlogs(nfs_volume="nfs.example.com:/exports/logs")
    assert bad.value.exit_code == 2 and "-o and --nfs" in bad.value.message
    assert os.listdir(lab.out) == [] and lab.asked() == set()


def test_too_little_free_space_refuses_and_writes_nothing(lab: Lab, monkeypatch) -> None:
    with (lab.root / "controller01" / "big.log").open("wb") as big:
        big.truncate(5 * MIB)  # sparse: 5 MiB by its size, as the node's estimate counts it
    monkeypatch.setattr(DirectoryTarget, "free_bytes", lambda self: 2 * MIB)
    with pytest.raises(Refused) as refused:
        lab.getlogs(nodes=["controller01"])
    assert refused.value.exit_code == 4
    # 5 MiB and the small log, and a MiB for the commands' output
    assert refused.value.message == f"{lab.out} has 2 MiB free; the bundle needs up to 6 MiB"
    assert os.listdir(lab.out) == []
    assert lab.shell.asked == [("run", "controller01")]  # the estimate only: nothing was streamed


# --- the command line -----------------------------------------------------------------------------
def test_help_lists_every_option() -> None:
    result = CliRunner().invoke(cli, ["deployment", "getlogs", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--since", "--recent-logs", "--node", "--role", "--non-node-logs", "-o", "--output", "--nfs"):
        assert option in result.output, option
